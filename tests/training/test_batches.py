"""Batches mix classes: a full seeded shuffle every epoch, in memory or streamed from disk."""

from __future__ import annotations

import numpy as np
import pytest

from training.config import load_config
from training.data import Crops, in_memory, make_dataset

pytestmark = pytest.mark.needs_tf

METHODS = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def single_class_fraction(labels: np.ndarray, batch: int = 32) -> float:
    batches = [labels[i : i + batch] for i in range(0, len(labels) - batch + 1, batch)]
    return float(np.mean([b.min() == b.max() for b in batches]))


def ffpp_labels(originals: int, crops_per_video: int) -> np.ndarray:
    """Labels as load_crops lists FF++: sorted by video id, so Deepfakes/..., ..., original/... ."""
    ids = sorted(
        [f"{m}/{v:03d}" for m in METHODS for v in range(originals)]
        + [f"original/{v:03d}" for v in range(originals)]
    )
    return np.repeat([0 if i.startswith("original/") else 1 for i in ids], crops_per_video)


def test_full_size_ffpp_layout_before_and_after():
    """FF++ c23 as prepared (1,000 originals, 4 methods, 32 crops a video): the order only."""
    import tensorflow as tf

    labels = ffpp_labels(1000, 32)
    old = tf.data.Dataset.from_tensor_slices(labels).shuffle(4096, seed=0)  # the former 4,096-crop buffer
    new = tf.data.Dataset.from_tensor_slices(labels).shuffle(len(labels), seed=0)
    before = single_class_fraction(np.fromiter(old.as_numpy_iterator(), np.int64))
    after = single_class_fraction(np.fromiter(new.as_numpy_iterator(), np.int64))
    print(f"single-class batches of 32 on FF++ c23: before {before:.1%}, after {after:.1%}")
    assert before > 0.5 and after <= 0.05


@pytest.fixture(scope="module")
def sorted_layout(tmp_path_factory) -> Crops:
    """A small FF++-like crops layout on disk (40 originals, 4 methods, 8 crops each), sorted by video."""
    import cv2

    root = tmp_path_factory.mktemp("ffpp-like")
    labels = ffpp_labels(40, 8)
    paths = []
    for i, label in enumerate(labels):
        path = root / f"{i:05d}.png"
        pixel = np.full((16, 16, 3), 40 + 150 * label, np.uint8)
        pixel[0, 0] = [i % 256, i // 256, 0]  # each crop is recognisable
        cv2.imwrite(str(path), pixel)
        paths.append(str(path))
    return Crops(paths, labels, [str(i // 8) for i in range(len(labels))])


def epoch_labels(crops: Crops, overrides: list[str]) -> list[np.ndarray]:
    config = load_config("tiny", ["augment=false", "batch_size=32", *overrides])
    ds = make_dataset(crops, config, size=16, training=True)
    return [[y.numpy().reshape(-1) for _, y in ds] for _ in range(2)]


@pytest.mark.parametrize("mode", [["cache=true"], ["cache=false"]], ids=["in-memory", "streamed"])
def test_sorted_layout_gives_mixed_batches_every_epoch(sorted_layout, mode):
    config = load_config("tiny", mode)
    assert in_memory(len(sorted_layout), 16, config) == (mode == ["cache=true"])
    epochs = epoch_labels(sorted_layout, mode)
    for batches in epochs:
        labels = np.concatenate(batches)
        assert sorted(labels.tolist()) == sorted(sorted_layout.labels.tolist())  # every crop once
        full = [b for b in batches if len(b) == 32]
        assert np.mean([b.min() == b.max() for b in full]) <= 0.05
    assert not np.array_equal(np.concatenate(epochs[0]), np.concatenate(epochs[1]))  # reshuffled
    assert [np.concatenate(e).tolist() for e in epochs] == [
        np.concatenate(e).tolist() for e in epoch_labels(sorted_layout, mode)
    ]  # seeded


def test_a_small_buffer_reproduces_the_old_single_class_batches(sorted_layout):
    (batches, _) = epoch_labels(sorted_layout, ["shuffle_buffer=40"])  # 1,600 crops, buffer 2.5 %
    assert np.mean([b.min() == b.max() for b in batches if len(b) == 32]) > 0.5


def test_streamed_and_in_memory_read_the_same_crops(sorted_layout):
    outputs = []
    for cache in ("true", "false"):
        config = load_config("tiny", [f"cache={cache}", "batch_size=64"])
        ds = make_dataset(sorted_layout, config, size=16, training=False)
        outputs.append(np.concatenate([x.numpy() for x, _ in ds]))
    np.testing.assert_array_equal(outputs[0], outputs[1])
    assert outputs[0].shape == (len(sorted_layout), 16, 16, 3)
    small = load_config("tiny", ["cache_limit_mb=0"])
    assert not in_memory(len(sorted_layout), 16, small)  # over the limit: streamed even with cache on
