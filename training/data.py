"""The ``tf.data`` input pipeline over a prepared crops folder.

decode (parallel) -> cache -> shuffle -> [self-blend] -> augment (parallel, per-element seeds)
-> batch -> prefetch. :func:`preprocess` is the per-crop part, the same function eagerly and
inside the pipeline (a test compares the two).
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass

import numpy as np

from deepfake_client.errors import InvalidInputError
from training.config import TrainConfig
from training.prepare import read_info, read_manifest


@dataclass(frozen=True)
class Crops:
    """The crops of one split: file paths, labels (1 = fake) and the video each comes from."""

    paths: list[str]
    labels: np.ndarray
    videos: list[str]

    def __len__(self) -> int:
        return len(self.paths)


def evenly_spread(crops: Crops, count: int) -> Crops:
    """At most ``count`` of ``crops``, evenly spaced through the split (all of them if fewer)."""
    if count <= 0:
        raise InvalidInputError(f"the number of crops to keep must be positive, got {count}")
    if len(crops) <= count:
        return crops
    keep = np.linspace(0, len(crops) - 1, count).round().astype(int)
    return Crops([crops.paths[i] for i in keep], crops.labels[keep], [crops.videos[i] for i in keep])


def load_crops(
    data_dir: str | pathlib.Path, split: str, *, max_per_video: int | None = None, seed: int = 0
) -> Crops:
    """The crops of ``split`` listed in the manifest of the prepared folder ``data_dir``.

    Videos come in the order of their ids, not of the manifest: parallel preparation appends
    videos as they finish, so the manifest's order changes from one preparation to the next, and
    with it the seeded shuffle, the batches and the trained weights.
    """
    data_dir = pathlib.Path(data_dir)
    read_info(data_dir)
    rng = np.random.default_rng(seed)
    paths, labels, videos = [], [], []
    for record in sorted(read_manifest(data_dir), key=lambda r: r["id"]):
        if record["split"] != split or not record["faces"]:
            continue
        faces = record["faces"]
        if max_per_video and len(faces) > max_per_video:
            faces = [faces[i] for i in sorted(rng.choice(len(faces), max_per_video, replace=False))]
        for face in faces:
            paths.append(str(data_dir / face["file"]))
            labels.append(record["label"])
            videos.append(record["id"])
    return Crops(paths, np.asarray(labels, dtype=np.int64), videos)


def read_crop(path, size: int):
    """Decode the image file ``path`` to uint8 RGB ``[size, size, 3]`` (resized only if it differs)."""
    import tensorflow as tf

    image = tf.io.decode_image(tf.io.read_file(path), channels=3, expand_animations=False)
    shape = tf.shape(image)

    def resize():
        resized = tf.image.resize(image, [size, size], method="area", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)

    image = tf.cond(tf.logical_and(tf.equal(shape[0], size), tf.equal(shape[1], size)), lambda: image, resize)
    return tf.ensure_shape(image, [size, size, 3])


def self_blend_op(image, seed, margin: float):
    """A self-blended pseudo-fake of ``image`` (a ``tf.numpy_function`` around ``training.sbi``)."""
    import tensorflow as tf

    from training.sbi import self_blend_seeded

    fake = tf.numpy_function(self_blend_seeded, [image, seed, np.float64(margin)], tf.uint8, stateful=False)
    return tf.ensure_shape(fake, image.shape)


def preprocess(image, seed, config: TrainConfig, training: bool):
    """The per-crop transform: augmentation when ``training`` (seeded), identity otherwise."""
    from training.augment import augment_image

    return augment_image(image, seed, config) if training and config.augment else image


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Weights making both classes count equally: ``n / (2 * n_class)``."""
    n = len(labels)
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        raise InvalidInputError(
            f"training needs both classes; got {counts[0]} real and {counts[1]} fake crops"
        )
    return {c: float(n / (2.0 * counts[c])) for c in (0, 1)}


def make_dataset(
    crops: Crops, config: TrainConfig, *, size: int, training: bool, margin: float = 0.3, repeat: bool = False
):
    """A batched ``tf.data.Dataset`` of ``(uint8 images [B, S, S, 3], float32 labels [B, 1])``.

    Args:
        crops: the crops to read.
        config: augmentation, batching, balance, seed and SBI settings.
        size: the model input size.
        training: shuffle, balance, self-blend and augment (otherwise keep order, no randomness).
        margin: the crop margin of the prepared crops (where the face lies, for SBI masks).
        repeat: repeat forever (balanced sampling always does).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    sbi = training and config.sbi

    def decoded(paths, labels):
        ds = tf.data.Dataset.from_tensor_slices((paths, labels.astype(np.float32)))
        ds = ds.map(lambda p, y: (read_crop(p, size), y), num_parallel_calls=autotune, deterministic=True)
        return ds.cache() if config.cache else ds

    if not training:
        ds = decoded(crops.paths, crops.labels)
    else:
        labels = crops.labels
        real = [p for p, y in zip(crops.paths, labels, strict=True) if y == 0]
        fake = [p for p, y in zip(crops.paths, labels, strict=True) if y == 1]
        if sbi:
            base = decoded(real, np.zeros(len(real), np.int64))
            ds = base.shuffle(
                min(len(real), config.shuffle_buffer), seed=config.seed, reshuffle_each_iteration=True
            )
            seeds = tf.data.Dataset.random(seed=config.seed + 1, rerandomize_each_iteration=True).batch(2)

            def pair(image, seed):
                fake_image = self_blend_op(image, seed, margin)
                return tf.data.Dataset.from_tensor_slices(
                    (tf.stack([image, fake_image]), tf.constant([0.0, 1.0]))
                )

            ds = tf.data.Dataset.zip(ds.map(lambda x, y: x), seeds).flat_map(pair)
            if config.sbi_fake_weight > 0 and fake:
                fakes = decoded(fake, np.ones(len(fake), np.int64)).repeat()
                ds = tf.data.Dataset.sample_from_datasets(
                    [ds.repeat(), fakes],
                    [1.0 - config.sbi_fake_weight, config.sbi_fake_weight],
                    seed=config.seed,
                )
        elif config.balance == "sample":
            parts = [
                decoded(p, np.full(len(p), y, np.int64))
                .repeat()
                .shuffle(min(len(p), config.shuffle_buffer), seed=config.seed + y)
                for y, p in ((0, real), (1, fake))
            ]
            if not real or not fake:
                raise InvalidInputError("balanced sampling needs both real and fake crops")
            ds = tf.data.Dataset.sample_from_datasets(parts, [0.5, 0.5], seed=config.seed)
        else:
            ds = decoded(crops.paths, crops.labels)
            ds = ds.shuffle(
                min(len(crops), config.shuffle_buffer), seed=config.seed, reshuffle_each_iteration=True
            )
        if repeat:
            ds = ds.repeat()
        seeds = tf.data.Dataset.random(seed=config.seed + 2, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip(ds, seeds).map(
            lambda xy, seed: (preprocess(xy[0], seed, config, True), xy[1]),
            num_parallel_calls=autotune,
            deterministic=True,
        )
    ds = ds.map(lambda x, y: (x, tf.reshape(y, [1])))
    return ds.batch(config.batch_size, drop_remainder=False).prefetch(autotune)


def steps_per_epoch(crops: Crops, config: TrainConfig) -> int | None:
    """Batches per epoch for repeated pipelines (balanced sampling, SBI); None: one pass."""
    if config.sbi:
        return max(1, math.ceil(2 * int((crops.labels == 0).sum()) / config.batch_size))
    if config.balance == "sample":
        return max(1, math.ceil(len(crops) / config.batch_size))
    return None
