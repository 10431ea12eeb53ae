"""Training augmentation as TensorFlow ops: the same result eagerly and inside ``tf.data``.

Every random choice comes from a stateless op seeded by the element's own seed (``[2]`` int64),
so an augmented crop depends only on the crop, the seed and the config. Images stay uint8 RGB
at both ends, exactly what the model sees at serving time.
"""

from __future__ import annotations

import math

from training.config import TrainConfig


def _rotate(image, angle, fill_mode: str = "REFLECT"):
    """Rotate a float ``[S, S, 3]`` image by ``angle`` radians about its centre."""
    import tensorflow as tf

    shape = tf.shape(image)
    h, w = tf.cast(shape[0], tf.float32), tf.cast(shape[1], tf.float32)
    cos, sin = tf.math.cos(angle), tf.math.sin(angle)
    x_offset = ((w - 1) - (cos * (w - 1) - sin * (h - 1))) / 2.0
    y_offset = ((h - 1) - (sin * (w - 1) + cos * (h - 1))) / 2.0
    transform = tf.stack([cos, -sin, x_offset, sin, cos, y_offset, 0.0, 0.0])[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=shape[:2],
        fill_value=0.0,
        interpolation="BILINEAR",
        fill_mode=fill_mode,
    )
    return out[0]


def _gaussian_blur(image, sigma):
    """Blur a float ``[S, S, 3]`` image with a 5x5 Gaussian of width ``sigma``."""
    import tensorflow as tf

    x = tf.range(-2.0, 3.0)
    k = tf.exp(-(x**2) / (2.0 * sigma**2))
    k = k / tf.reduce_sum(k)
    kernel = tf.tile((k[:, None] * k[None, :])[:, :, None, None], [1, 1, 3, 1])
    padded = tf.pad(image[None], [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
    return tf.nn.depthwise_conv2d(padded, kernel, [1, 1, 1, 1], "VALID")[0]


def augment_image(image, seed, config: TrainConfig):
    """Augment one uint8 RGB crop ``[S, S, 3]`` with the element seed ``seed`` (int64 ``[2]``).

    Flip, small rotation, random crop resized back, colour jitter, blur, JPEG recompression and
    Gaussian noise, each as strong and as often as ``config`` says.
    """
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=14)
    size = tf.shape(image)[0]
    x = tf.cast(image, tf.float32) / 255.0
    if config.flip:
        x = tf.image.stateless_random_flip_left_right(x, seeds[0])
    if config.crop_fraction > 0:
        keep = tf.random.stateless_uniform([], seeds[1], 1.0 - config.crop_fraction, 1.0)
        side = tf.cast(tf.round(tf.cast(size, tf.float32) * keep), tf.int32)
        x = tf.image.stateless_random_crop(x, tf.stack([side, side, 3]), seeds[2])
        x = tf.image.resize(x[None], tf.stack([size, size]), method="bilinear")[0]
    if config.rotation_deg > 0:
        limit = config.rotation_deg * math.pi / 180.0
        x = _rotate(x, tf.random.stateless_uniform([], seeds[3], -limit, limit))
    if config.brightness > 0:
        x = tf.image.stateless_random_brightness(x, config.brightness, seeds[4])
    if config.contrast > 0:
        x = tf.image.stateless_random_contrast(x, 1.0 - config.contrast, 1.0 + config.contrast, seeds[5])
    if config.saturation > 0:
        x = tf.image.stateless_random_saturation(
            x, 1.0 - config.saturation, 1.0 + config.saturation, seeds[6]
        )
    if config.hue > 0:
        x = tf.image.stateless_random_hue(x, config.hue, seeds[7])
    x = tf.clip_by_value(x, 0.0, 1.0)
    if config.blur_probability > 0:
        sigma = tf.random.stateless_uniform([], seeds[8], 0.5, 1.5)
        apply = tf.random.stateless_uniform([], seeds[9]) < config.blur_probability
        x = tf.cond(apply, lambda: _gaussian_blur(x, sigma), lambda: x)
    if config.jpeg_probability > 0:
        apply = tf.random.stateless_uniform([], seeds[10]) < config.jpeg_probability
        x = tf.cond(
            apply,
            lambda: tf.image.stateless_random_jpeg_quality(x, config.jpeg_quality_min, 95, seeds[11]),
            lambda: x,
        )
    if config.noise_probability > 0 and config.noise_std > 0:
        apply = tf.random.stateless_uniform([], seeds[12]) < config.noise_probability
        noise = tf.random.stateless_normal(tf.shape(x), seeds[13], stddev=config.noise_std / 255.0)
        x = tf.where(apply, x + noise, x)
    x = tf.clip_by_value(tf.round(x * 255.0), 0.0, 255.0)
    return tf.ensure_shape(tf.cast(x, tf.uint8), image.shape)
