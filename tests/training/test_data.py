"""The input pipeline: preprocessing eagerly == inside tf.data, seeded augmentation, balance, SBI."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from training.config import load_config
from training.data import class_weights, load_crops, make_dataset, preprocess, read_crop

pytestmark = pytest.mark.needs_tf

HEAVY = [
    "augment=true",
    "rotation_deg=10.0",
    "crop_fraction=0.1",
    "saturation=0.2",
    "hue=0.05",
    "blur_probability=0.5",
    "jpeg_probability=0.5",
    "noise_probability=0.5",
]


def test_preprocessing_is_the_same_eagerly_and_in_tf_data(prepared_crops):
    import tensorflow as tf

    config = load_config("smoke", HEAVY)
    crops = load_crops(prepared_crops, "train")
    paths = crops.paths[:4]
    seeds = np.arange(8, dtype=np.int64).reshape(4, 2) + 1234
    eager = [
        preprocess(read_crop(tf.constant(p), 64), tf.constant(s), config, True).numpy()
        for p, s in zip(paths, seeds, strict=True)
    ]
    ds = tf.data.Dataset.from_tensor_slices((paths, seeds)).map(
        lambda p, s: preprocess(read_crop(p, 64), s, config, True), num_parallel_calls=4
    )
    in_pipeline = [x.numpy() for x in ds]
    for a, b in zip(eager, in_pipeline, strict=True):
        assert a.dtype == b.dtype == np.uint8 and a.shape == (64, 64, 3)
        np.testing.assert_array_equal(a, b)
    raw = [read_crop(tf.constant(p), 64).numpy() for p in paths]
    changed = sum(not np.array_equal(a, r) for a, r in zip(eager, raw, strict=True))
    assert changed >= 3  # augmentation does change crops
    again = preprocess(read_crop(tf.constant(paths[0]), 64), tf.constant(seeds[0]), config, True).numpy()
    np.testing.assert_array_equal(again, eager[0])
    other = preprocess(read_crop(tf.constant(paths[0]), 64), tf.constant(seeds[0] + 7), config, True).numpy()
    assert not np.array_equal(other, eager[0])


def test_decoding_returns_the_stored_pixels_and_resizes_other_sizes(prepared_crops):
    import cv2
    import tensorflow as tf

    path = load_crops(prepared_crops, "val").paths[0]
    stored = cv2.cvtColor(cv2.imread(path), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(read_crop(tf.constant(path), 64).numpy(), stored)
    assert read_crop(tf.constant(path), 48).numpy().shape == (48, 48, 3)


def test_eval_pipeline_keeps_order_and_labels(prepared_crops):
    config = load_config("smoke")
    crops = load_crops(prepared_crops, "val")
    batches = list(make_dataset(crops, config, size=64, training=False))
    labels = np.concatenate([y.numpy().reshape(-1) for _, y in batches])
    np.testing.assert_array_equal(labels, crops.labels.astype(np.float32))
    assert batches[0][0].dtype.name == "uint8"


def test_balanced_sampling_and_class_weights(prepared_crops):
    crops = load_crops(prepared_crops, "train")
    weights = class_weights(np.array([1, 1, 1, 0]))
    assert weights[0] == pytest.approx(2.0) and weights[1] == pytest.approx(2 / 3)
    with pytest.raises(InvalidInputError, match="both classes"):
        class_weights(np.array([1, 1]))
    config = load_config("smoke", ["balance=sample", "batch_size=50", "augment=false"])
    ds = make_dataset(crops, config, size=64, training=True, repeat=True)
    labels = np.concatenate([y.numpy().reshape(-1) for _, y in ds.take(8)])
    assert 0.4 < labels.mean() < 0.6


def test_self_blended_pairs(prepared_crops):
    config = load_config("smoke", ["sbi=true", "augment=false", "batch_size=8"])
    crops = load_crops(prepared_crops, "train")
    images, labels = next(iter(make_dataset(crops, config, size=64, training=True)))
    images, labels = images.numpy(), labels.numpy().reshape(-1)
    assert labels.tolist() == [0.0, 1.0] * 4  # each real crop followed by its self-blended copy
    for i in range(0, 8, 2):
        assert not np.array_equal(images[i], images[i + 1])


def test_evenly_spread_keeps_a_spread_subset_in_order(prepared_crops):
    from training.data import evenly_spread

    crops = load_crops(prepared_crops, "train")
    assert evenly_spread(crops, len(crops) + 5) is crops
    some = evenly_spread(crops, 5)
    assert len(some) == 5 and some.paths[0] == crops.paths[0] and some.paths[-1] == crops.paths[-1]
    assert [crops.paths.index(p) for p in some.paths] == sorted(crops.paths.index(p) for p in some.paths)
    assert list(some.labels) == [crops.labels[crops.paths.index(p)] for p in some.paths]
    with pytest.raises(InvalidInputError):
        evenly_spread(crops, 0)
    with pytest.raises(InvalidInputError, match="population_bn_images"):
        load_config("smoke", {"population_bn_images": 0})
