"""Vision Transformer backbones (Dosovitskiy et al. 2021), built from Keras layers.

Why not Keras Hub's ViT: ``pip install keras-hub`` (0.32) pulls tensorflow-text, which moves
TensorFlow from 2.20 (pinned to the TF Serving image) to 2.21, and its weights are presets
fetched from Kaggle at run time. So ViT-B/16 is written here: a 16x16 patch embedding
(a strided convolution), a class token, learnt position embeddings, pre-norm transformer blocks
(multi-head self-attention and a GELU MLP, residuals), a final layer norm, and the class token's
features out. Weights: random initialisation only (``weights: null``); ViT trained from scratch
needs much more data than a CNN, which is why the CNN presets stay the default.

``vit_b16``: patch 16, width 768, depth 12, 12 heads, MLP 3072 (85.8 M parameters), 224 px.
``vit_tiny``: patch 8, width 64, depth 4, 4 heads, MLP 128, 64 px: for CPU tests and demos.

:class:`ClassToken` and :class:`PositionEmbedding` are registered serializable layers (Keras has
none for them): ``model.keras`` reloads once this module is imported, which
``training.evaluate.load_run_model`` does; the exported SavedModel needs nothing.
"""

from __future__ import annotations

import keras
from keras import layers, ops

from deepfake_client.errors import InvalidInputError

VIT_VARIANTS: dict[str, dict[str, int]] = {
    "vit_b16": {"patch": 16, "width": 768, "depth": 12, "heads": 12, "mlp_dim": 3072},
    "vit_tiny": {"patch": 8, "width": 64, "depth": 4, "heads": 4, "mlp_dim": 128},
}


@keras.saving.register_keras_serializable(package="deepfake_serving")
class ClassToken(layers.Layer):
    """Prepend one learnt token to a sequence ``[B, N, D]`` -> ``[B, N + 1, D]``."""

    def build(self, input_shape):
        self.token = self.add_weight(name="token", shape=(1, 1, input_shape[-1]), initializer="zeros")

    def call(self, x):
        token = ops.cast(ops.broadcast_to(self.token, (ops.shape(x)[0], 1, ops.shape(x)[-1])), x.dtype)
        return ops.concatenate([token, x], axis=1)

    def compute_output_shape(self, input_shape):
        length = None if input_shape[1] is None else input_shape[1] + 1
        return (input_shape[0], length, input_shape[2])


@keras.saving.register_keras_serializable(package="deepfake_serving")
class PositionEmbedding(layers.Layer):
    """Add a learnt embedding per position to ``[B, N, D]`` (N fixed by the input size)."""

    def build(self, input_shape):
        self.embedding = self.add_weight(
            name="embedding",
            shape=(1, input_shape[1], input_shape[2]),
            initializer=keras.initializers.RandomNormal(stddev=0.02),
        )

    def call(self, x):
        return x + ops.cast(self.embedding, x.dtype)


@keras.saving.register_keras_serializable(package="deepfake_serving")
class TakeClassToken(layers.Layer):
    """The class token's features ``[B, D]`` of ``[B, N + 1, D]``."""

    def call(self, x):
        return x[:, 0]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


def vit_features(
    pixels, size: int, *, patch: int, width: int, depth: int, heads: int, mlp_dim: int, dropout: float = 0.0
):
    """Class-token features ``[None, width]`` of a ViT over float pixels 0..255 ``[None, S, S, 3]``."""
    if size % patch:
        raise InvalidInputError(
            f"a ViT's input size must be a multiple of its patch ({patch} px), got {size}"
        )
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(pixels)
    x = layers.Conv2D(width, patch, strides=patch, padding="valid", name="patch_embedding")(x)
    x = layers.Reshape(((size // patch) ** 2, width), name="patches")(x)
    x = ClassToken(name="class_token")(x)
    x = PositionEmbedding(name="position_embedding")(x)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(depth):
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        y = layers.MultiHeadAttention(heads, width // heads, dropout=dropout, name=f"block{i}_attention")(
            y, y
        )
        x = layers.Add(name=f"block{i}_residual1")([x, y])
        y = layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        y = layers.Dense(mlp_dim, activation="gelu", name=f"block{i}_mlp1")(y)
        y = layers.Dropout(dropout, name=f"block{i}_mlp_dropout")(y)
        y = layers.Dense(width, name=f"block{i}_mlp2")(y)
        x = layers.Add(name=f"block{i}_residual2")([x, y])
    x = layers.LayerNormalization(epsilon=1e-6, name="encoder_norm")(x)
    return TakeClassToken(name="class_features")(x)
