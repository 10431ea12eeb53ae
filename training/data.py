"""The ``tf.data`` input pipeline over a prepared crops folder.

Small sets: decode (parallel) -> cache in memory -> shuffle. Large sets (over ``cache_limit_mb``
decoded, or ``cache: false``): shuffle the whole file list every epoch -> read and decode
(parallel), so FF++ and DFDC train in bounded memory. Then [self-blend] -> augment (parallel,
per-element seeds) -> batch -> prefetch. Either way every epoch is a full seeded shuffle of the
split, so batches mix classes even though crops are listed video by video.
:func:`preprocess` is the per-crop part, the same function eagerly and inside the pipeline (a test
compares the two).
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
    """The crops of one split: file paths, labels (1 = fake), the video and frame each comes from.

    ``sources`` says where a video comes from (an FF++ method, ``original``, a DFDC part ...);
    ``empty`` lists the split's videos with no crop at all (no face found, or unreadable) as
    ``(video id, label, source)``: evaluation scores them 0.5 instead of dropping them.
    """

    paths: list[str]
    labels: np.ndarray
    videos: list[str]
    frames: list[int] | None = None
    sources: list[str] | None = None
    empty: tuple[tuple[str, int, str], ...] = ()

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, keep) -> Crops:
        """The crops at the indices ``keep`` (in that order), ``empty`` unchanged."""
        keep = [int(i) for i in keep]
        pick = lambda values: None if values is None else [values[i] for i in keep]  # noqa: E731
        return Crops(
            [self.paths[i] for i in keep],
            self.labels[keep] if keep else self.labels[:0],
            [self.videos[i] for i in keep],
            pick(self.frames),
            pick(self.sources),
            self.empty,
        )


def evenly_spread(crops: Crops, count: int) -> Crops:
    """At most ``count`` of ``crops``, evenly spaced through the split (all of them if fewer)."""
    if count <= 0:
        raise InvalidInputError(f"the number of crops to keep must be positive, got {count}")
    if len(crops) <= count:
        return crops
    return crops.subset(np.linspace(0, len(crops) - 1, count).round().astype(int))


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
    paths, labels, videos, frames, sources, empty = [], [], [], [], [], []
    for record in sorted(read_manifest(data_dir), key=lambda r: r["id"]):
        if record["split"] != split:
            continue
        source = str(record.get("source") or "")
        faces = record["faces"]
        if not faces:
            empty.append((record["id"], int(record["label"]), source))
            continue
        if max_per_video and len(faces) > max_per_video:
            faces = [faces[i] for i in sorted(rng.choice(len(faces), max_per_video, replace=False))]
        for face in faces:
            paths.append(str(data_dir / face["file"]))
            labels.append(record["label"])
            videos.append(record["id"])
            frames.append(int(face.get("frame", 0)))
            sources.append(source)
    return Crops(paths, np.asarray(labels, dtype=np.int64), videos, frames, sources, tuple(empty))


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


def self_blended_pair_op(image, seed, margin: float, training: bool):
    """``(real, fake)`` of one real crop (a ``tf.numpy_function`` around ``training.sbi``)."""
    import tensorflow as tf

    from training.sbi import self_blended_pair_seeded

    real, fake = tf.numpy_function(
        self_blended_pair_seeded,
        [image, seed, np.float64(margin), training],
        (tf.uint8, tf.uint8),
        stateful=False,
    )
    return tf.ensure_shape(real, image.shape), tf.ensure_shape(fake, image.shape)


def in_memory(count: int, size: int, config: TrainConfig) -> bool:
    """Whether ``count`` decoded ``size`` px crops stay in memory (``cache``, within ``cache_limit_mb``)."""
    return config.cache and count * size * size * 3 <= config.cache_limit_mb * 2**20


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


def crop_source(paths, labels, config: TrainConfig, *, size: int, shuffle: bool, seed: int = 0):
    """Decoded ``(image, label)`` pairs of ``paths``: from memory or streamed from disk.

    In memory (:func:`in_memory`): decoded once and cached, then shuffled through a buffer of
    ``shuffle_buffer`` crops (null: all of them). Streamed: the file list is shuffled in full every
    epoch (seeded) and each crop read and decoded again, so memory does not grow with the split.
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    ds = tf.data.Dataset.from_tensor_slices((list(paths), np.asarray(labels).astype(np.float32)))

    def read(p, y):
        return read_crop(p, size), y

    count = len(paths)
    if in_memory(count, size, config):
        ds = ds.map(read, num_parallel_calls=autotune, deterministic=True).cache()
        if shuffle and count:
            buffer = min(count, config.shuffle_buffer or count)
            ds = ds.shuffle(buffer, seed=seed, reshuffle_each_iteration=True)
        return ds
    if shuffle and count:
        ds = ds.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    return ds.map(read, num_parallel_calls=autotune, deterministic=True)


def _pairs(ds, seeds, margin: float, training: bool):
    """Each real crop followed by its self-blended copy (labels 0, 1)."""
    import tensorflow as tf

    def pair(image, seed):
        real, fake = self_blended_pair_op(image, seed, margin, training)
        return tf.data.Dataset.from_tensor_slices((tf.stack([real, fake]), tf.constant([0.0, 1.0])))

    return tf.data.Dataset.zip(ds.map(lambda x, y: x), seeds).flat_map(pair)


def self_blended_validation(crops: Crops, config: TrainConfig, *, size: int, margin: float):
    """SBI's validation: the real crops of ``crops`` and their self-blended copies, the same every epoch.

    Returns ``(dataset, pairs)``: batched ``(images, labels)`` and the :class:`Crops` describing
    them in order (a blend's video is ``<video>#self-blended``), for scoring by video.
    """
    import tensorflow as tf

    real = [i for i, y in enumerate(crops.labels) if y == 0]
    reals = crops.subset(real)
    ds = crop_source(reals.paths, reals.labels, config, size=size, shuffle=False)
    seeds = tf.data.Dataset.range(len(reals)).map(lambda i: tf.stack([tf.constant(config.seed, tf.int64), i]))
    ds = _pairs(ds, seeds, margin, False).map(lambda x, y: (x, tf.reshape(y, [1])))
    twice = [i for i in range(len(reals)) for _ in (0, 1)]
    pairs = reals.subset(twice)
    pairs = Crops(
        pairs.paths,
        np.tile(np.array([0, 1], np.int64), len(reals)),
        [v + ("#self-blended" if k % 2 else "") for k, v in enumerate(pairs.videos)],
        pairs.frames,
        [s if k % 2 == 0 else "self-blended" for k, s in enumerate(pairs.sources or [""] * len(twice))],
    )
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE), pairs


def make_dataset(
    crops: Crops, config: TrainConfig, *, size: int, training: bool, margin: float = 0.3, repeat: bool = False
):
    """A batched ``tf.data.Dataset`` of ``(uint8 images [B, S, S, 3], float32 labels [B, 1])``.

    Args:
        crops: the crops to read.
        config: augmentation, batching, balance, caching, seed and SBI settings.
        size: the model input size.
        training: shuffle, balance, self-blend and augment (otherwise keep order, no randomness).
        margin: the crop margin of the prepared crops (where the face lies, for SBI).
        repeat: repeat forever (balanced sampling always does).
    """
    import tensorflow as tf

    autotune = tf.data.AUTOTUNE
    if not training:
        ds = crop_source(crops.paths, crops.labels, config, size=size, shuffle=False)
    else:
        real = [p for p, y in zip(crops.paths, crops.labels, strict=True) if y == 0]
        fake = [p for p, y in zip(crops.paths, crops.labels, strict=True) if y == 1]
        if config.sbi:
            base = crop_source(real, np.zeros(len(real)), config, size=size, shuffle=True, seed=config.seed)
            seeds = tf.data.Dataset.random(seed=config.seed + 1, rerandomize_each_iteration=True).batch(2)
            # a pair's augmentation is SBI's own, shared by the two images (training.sbi)
            ds = _pairs(base, seeds, margin, config.augment)
            if config.sbi_fake_weight > 0 and fake:
                fakes = crop_source(
                    fake, np.ones(len(fake)), config, size=size, shuffle=True, seed=config.seed
                )
                ds = tf.data.Dataset.sample_from_datasets(
                    [ds.repeat(), fakes.repeat()],
                    [1.0 - config.sbi_fake_weight, config.sbi_fake_weight],
                    seed=config.seed,
                )
        elif config.balance == "sample":
            if not real or not fake:
                raise InvalidInputError("balanced sampling needs both real and fake crops")
            parts = [
                crop_source(
                    p, np.full(len(p), y), config, size=size, shuffle=True, seed=config.seed + y
                ).repeat()
                for y, p in ((0, real), (1, fake))
            ]
            ds = tf.data.Dataset.sample_from_datasets(parts, [0.5, 0.5], seed=config.seed)
        else:
            ds = crop_source(crops.paths, crops.labels, config, size=size, shuffle=True, seed=config.seed)
        if repeat:
            ds = ds.repeat()
        if not config.sbi:
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
