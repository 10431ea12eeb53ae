"""Robustness curves: a run's scores on one split under JPEG, downscaling, blur and noise.

The worry behind them: a detector that keys on fine detail fails on recompressed, low-resolution
or blurred fakes (the high-/low-resolution concern of the DFDC and Celeb-DF papers). Each
perturbation is applied to the decoded uint8 crop the model would get, at a list of levels, and
the split is scored again at each level: frame and video ROC-AUC, average precision, log loss.
The first level of each curve is the clean crop, so every curve starts at the clean score.
Noise is seeded per crop (stateless), so a curve is the same on every run.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from deepfake_client.errors import InvalidInputError

log = logging.getLogger(__name__)

# level -> what it means; the first level of each is "clean"
PERTURBATIONS: dict[str, tuple[str, tuple[float, ...]]] = {
    "jpeg": ("JPEG quality (100 = clean)", (100, 90, 70, 50, 30, 10)),
    "downscale": ("side scaled down then back up (1 = clean)", (1.0, 0.75, 0.5, 0.25, 0.125)),
    "blur": ("Gaussian blur sigma in pixels (0 = clean)", (0.0, 0.5, 1.0, 2.0, 3.0)),
    "noise": ("Gaussian noise std in pixel units 0..255 (0 = clean)", (0.0, 4.0, 8.0, 16.0, 32.0)),
}


def parse_perturbations(text: str | None) -> list[str]:
    """``"jpeg,blur"`` -> ``["jpeg", "blur"]``; ``None``, ``""`` or ``"all"`` -> all of them."""
    if not text or text == "all":
        return list(PERTURBATIONS)
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in PERTURBATIONS]
    if unknown:
        raise InvalidInputError(
            f"unknown perturbation {unknown[0]!r} (known: {', '.join(PERTURBATIONS)}, all)"
        )
    return kinds


def _gaussian_blur(image, sigma: float):
    """Blur a float ``[S, S, 3]`` image with a Gaussian of width ``sigma``.

    Written out rather than taken from ``training.augment``: augmentation blurs with a fixed 5x5
    kernel (sigma <= 1.5), a robustness curve needs wider ones (radius 3 sigma).
    """
    import tensorflow as tf

    radius = max(1, math.ceil(3.0 * sigma))
    x = tf.range(-radius, radius + 1, dtype=tf.float32)
    k = tf.exp(-(x**2) / (2.0 * sigma**2))
    k = k / tf.reduce_sum(k)
    kernel = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="SYMMETRIC")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]


def perturb(image, kind: str, level: float, seed=None):
    """One uint8 RGB crop ``[S, S, 3]`` under perturbation ``kind`` at ``level`` (uint8 out).

    ``seed`` (int64 ``[2]``) seeds the noise; the other perturbations are deterministic.
    """
    import tensorflow as tf

    if kind not in PERTURBATIONS:
        raise InvalidInputError(f"unknown perturbation {kind!r} (known: {', '.join(PERTURBATIONS)})")
    clean = PERTURBATIONS[kind][1][0]
    if level == clean:
        return image
    if kind == "jpeg":
        return tf.image.adjust_jpeg_quality(image, int(level))
    x = tf.cast(image, tf.float32)
    if kind == "downscale":
        size = tf.shape(image)[:2]
        small = tf.maximum(1, tf.cast(tf.round(tf.cast(size, tf.float32) * level), tf.int32))
        x = tf.image.resize(x, small, method="area", antialias=True)
        x = tf.image.resize(x, size, method="bilinear")
    elif kind == "blur":
        x = _gaussian_blur(x, float(level))
    else:  # noise
        seed = tf.constant([0, 0], tf.int64) if seed is None else seed
        x = x + tf.random.stateless_normal(tf.shape(x), seed, stddev=float(level))
    return tf.ensure_shape(tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8), image.shape)


def perturbed_dataset(crops, config, *, size: int, kind: str, level: float):
    """Batched ``(images, labels)`` of ``crops`` in order, each crop perturbed (seeded by its index)."""
    import tensorflow as tf

    from training.data import crop_source

    ds = crop_source(crops.paths, crops.labels, config, size=size, shuffle=False)
    seeds = tf.data.Dataset.range(len(crops)).map(lambda i: tf.stack([tf.constant(config.seed, tf.int64), i]))
    ds = tf.data.Dataset.zip(ds, seeds).map(
        lambda xy, seed: (perturb(xy[0], kind, level, seed), tf.reshape(xy[1], [1])),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    return ds.batch(config.batch_size).prefetch(tf.data.AUTOTUNE)


def robustness_curves(
    model, crops, config, *, size: int, aggregate: str, kinds: list[str], clean: np.ndarray | None = None
) -> dict[str, dict]:
    """Scores of ``crops`` under each perturbation of ``kinds`` at each of its levels.

    Args:
        model: the Keras model.
        crops: the split's :class:`training.data.Crops`.
        config: the run's config (batch size, seed, cache).
        size: the model input size.
        aggregate: how face scores make a video score.
        kinds: perturbations (keys of :data:`PERTURBATIONS`).
        clean: the clean probabilities if already computed (saves one pass per curve).

    Returns:
        ``{kind: {"meaning": str, "levels": [{"level", "frame_auc", "video_auc", "average_precision",
        "log_loss"}]}}``.
    """
    from training.evaluate import predict_batches
    from training.research import score_summary

    result = {}
    for kind in kinds:
        meaning, levels = PERTURBATIONS[kind]
        rows = []
        for level in levels:
            if level == levels[0] and clean is not None:
                probabilities = clean
            else:
                ds = perturbed_dataset(crops, config, size=size, kind=kind, level=level)
                probabilities = predict_batches(model, ds)
            row = {"level": level, **score_summary(crops, probabilities, aggregate)}
            log.info(
                "robustness %s %s: video AUC %s",
                kind,
                level,
                "-" if row["video_auc"] is None else f"{row['video_auc']:.3f}",
            )
            rows.append(row)
        result[kind] = {"meaning": meaning, "levels": rows}
    return result
