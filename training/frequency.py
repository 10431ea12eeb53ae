"""The frequency branch: the crop's spectrum through a small CNN, beside any backbone's features.

Face-swap and GAN pipelines upsample and blend, and leave periodic traces that colour statistics
hide but a spectrum shows as peaks (F3-Net, Qian et al. ECCV 2020: DCT frequency statistics;
SPSL, Liu et al. CVPR 2021: the spectrum of up-sampling). Config ``frequency: dct|fft`` adds
this branch to any backbone: ``[None, S, S, 3]`` pixels -> the log-magnitude spectrum of each
colour channel (2-D DCT-II, or the centred 2-D FFT) -> a few strided convolutions -> pooled
features, concatenated with the backbone's pooled features before the head.

:class:`Spectrum` is a registered serializable Keras layer (``tf.signal`` has no Keras layer):
``model.keras`` reloads once this module is imported, which :mod:`training.models` and
``training.evaluate.load_run_model`` do. The SavedModel needs nothing: the export traces it.
"""

from __future__ import annotations

import keras
from keras import layers

FREQUENCY_KINDS = ("dct", "fft")


@keras.saving.register_keras_serializable(package="deepfake_serving")
class Spectrum(layers.Layer):
    """Log-magnitude spectrum of each channel of float pixels 0..255 ``[B, S, S, C]``.

    ``dct``: the orthonormal 2-D DCT-II (low frequencies top-left, as F3-Net's bands);
    ``fft``: ``|FFT2|`` shifted so the zero frequency is in the centre (phase-invariant: a
    pattern gives the same peaks wherever it sits). Always float32, also under mixed precision.
    """

    def __init__(self, kind: str = "dct", **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if kind not in FREQUENCY_KINDS:
            raise ValueError(f"unknown spectrum kind {kind!r} (known: {', '.join(FREQUENCY_KINDS)})")
        self.kind = kind

    def call(self, images):
        import tensorflow as tf

        x = tf.transpose(tf.cast(images, tf.float32) / 255.0, [0, 3, 1, 2])  # [B, C, H, W]
        if self.kind == "dct":
            rows = tf.signal.dct(x, type=2, norm="ortho")  # along W
            spectrum = tf.signal.dct(tf.linalg.matrix_transpose(rows), type=2, norm="ortho")
            magnitude = tf.abs(tf.linalg.matrix_transpose(spectrum))
        else:
            size = tf.cast(tf.shape(x)[-1] * tf.shape(x)[-2], tf.float32)
            magnitude = tf.abs(tf.signal.fftshift(tf.signal.fft2d(tf.complex(x, 0.0)), axes=[-2, -1]))
            magnitude = magnitude / tf.sqrt(size)  # orthonormal, like the DCT
        return tf.transpose(tf.math.log(magnitude + 1e-3), [0, 2, 3, 1])

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "kind": self.kind}


def frequency_features(pixels, kind: str, filters: tuple[int, ...] = (16, 32, 64)):
    """Pooled features ``[None, filters[-1]]`` of the spectrum of ``pixels`` (float 0..255).

    The spectrum is standardised by a batch normalisation (its log values span about -7..5), then
    strided 3x3 convolutions: a spectrum has no translation structure worth pooling early, but
    peaks at fixed places, which strided convolutions keep apart.
    """
    x = Spectrum(kind, name=f"spectrum_{kind}")(pixels)
    x = layers.BatchNormalization(momentum=0.9, name="spectrum_norm")(x)
    for i, width in enumerate(filters):
        x = layers.Conv2D(width, 3, padding="same", use_bias=False, name=f"spectrum_conv{i}")(x)
        x = layers.BatchNormalization(momentum=0.9, name=f"spectrum_bn{i}")(x)
        x = layers.ReLU(name=f"spectrum_relu{i}")(x)
        x = layers.MaxPooling2D(2, name=f"spectrum_pool{i}")(x)
    return layers.GlobalMaxPooling2D(name="spectrum_pool")(x)
