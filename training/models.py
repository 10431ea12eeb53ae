"""Detector models by name: uint8 RGB face crops in, one logit per crop out.

Every model takes ``[None, S, S, 3]`` pixels in 0..255 (uint8 or float) and normalises them
inside the graph, so a client sends raw pixels. The output is one float32 logit per image,
``[None, 1]``, also under mixed precision. Only standard Keras layers, or layers registered as
serializable in this package (``training.frequency.Spectrum``, ``training.vit``'s), which
``training.evaluate.load_run_model`` imports: ``model.keras`` reloads with
``keras.models.load_model`` and no ``custom_objects``.

Any backbone can add the frequency branch (``frequency="dct"`` or ``"fft"``,
:mod:`training.frequency`): its pooled spectrum features are concatenated with the backbone's
before the head.
"""

from __future__ import annotations

from deepfake_client.errors import InvalidInputError, ServerUnavailableError

_EFFICIENTNETS = {f"efficientnet_b{i}": size for i, size in enumerate((224, 240, 260, 300, 380))}
DEFAULT_SIZES = {
    **_EFFICIENTNETS,
    "xception": 299,
    "resnet50": 224,
    "cnn256": 256,
    "dilated224": 224,
    "tiny": 64,
    "vit_b16": 224,  # training.vit: ViT-B/16 from Keras layers (random initialisation)
    "vit_tiny": 64,  # a 4-block ViT for CPU tests and demos
}
MODEL_NAMES = tuple(DEFAULT_SIZES)
DEFAULT_MODEL = "efficientnet_b0"
# Keras applications: ImageNet weights by default (every published recipe starts from them). The
# file Keras downloads (into ~/.keras/models), which --set weights=PATH accepts offline.
IMAGENET_FILES = {
    **{name: f"efficientnetb{name[-1]}_notop.h5" for name in _EFFICIENTNETS},
    "xception": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
    "resnet50": "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
PRETRAINED = tuple(IMAGENET_FILES)


def default_input_size(name: str) -> int:
    """The input size ``S`` a backbone was designed for."""
    if name not in DEFAULT_SIZES:
        raise InvalidInputError(f"unknown model name {name!r} (known: {', '.join(MODEL_NAMES)})")
    return DEFAULT_SIZES[name]


def check_weights(name: str, weights: str | None) -> None:
    """Refuse weights a backbone cannot take: ImageNet or a file for the small CNNs, a missing file."""
    import pathlib

    if weights and name not in PRETRAINED:
        raise InvalidInputError(
            f"model {name!r} has no pretrained weights (asked for {weights!r}): set weights: null"
        )
    if weights and weights != "imagenet" and not pathlib.Path(weights).is_file():
        raise InvalidInputError(
            f"weights {weights!r}: no such file (expected 'imagenet', null or the Keras file "
            f"{IMAGENET_FILES.get(name, '')})"
        )


def _application(name: str, constructor, size: int, weights: str | None):
    """A Keras application without its top, pooled, with ``weights``; offline, one line says what to do."""
    try:
        return constructor(include_top=False, weights=weights, input_shape=(size, size, 3), pooling="avg")
    except Exception as err:  # Keras raises a bare Exception for a failed download, ValueError for a file
        if weights != "imagenet":
            raise InvalidInputError(f"{weights}: cannot load it as {name} weights ({err})") from err
        reason = " ".join(str(err).split())[:200]
        raise ServerUnavailableError(
            f"cannot download the ImageNet weights of {name} ({reason}); offline, train with "
            f"--set weights=null (random initialisation) or --set weights=PATH to the Keras file "
            f"{IMAGENET_FILES[name]} copied from ~/.keras/models of a machine with a network"
        ) from err


def _backbone(name: str, x, size: int, weights: str | None, dropout: float):
    """Features ``[None, C]`` (pooled) of backbone ``name`` applied to float pixels 0..255 ``x``."""
    import keras
    from keras import layers

    check_weights(name, weights)
    if name in _EFFICIENTNETS:
        # Keras' EfficientNets normalise 0..255 inputs themselves (Rescaling + Normalization inside).
        cls = getattr(keras.applications, f"EfficientNetB{name[-1]}")
        return _application(name, cls, size, weights)(x)
    if name == "xception":
        x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="normalize")(x)
        return _application(name, keras.applications.Xception, size, weights)(x)
    if name == "resnet50":
        import numpy as np

        # Caffe-style preprocessing (RGB -> BGR, minus the ImageNet mean) as a frozen 1x1 convolution.
        to_bgr = layers.Conv2D(3, 1, trainable=False, name="caffe_preprocess")
        x = to_bgr(x)
        kernel = np.zeros((1, 1, 3, 3), dtype="float32")
        for i in range(3):
            kernel[0, 0, i, 2 - i] = 1.0
        to_bgr.set_weights([kernel, -np.array([103.939, 116.779, 123.68], dtype="float32")])
        return _application(name, keras.applications.ResNet50, size, weights)(x)
    if name.startswith("vit_"):
        from training.vit import VIT_VARIANTS, vit_features

        return vit_features(x, size, **VIT_VARIANTS[name])
    x = layers.Rescaling(1.0 / 255.0, name="normalize")(x)
    if name == "cnn256":
        # The two-convolution baseline: conv-pool, conv-pool, dense.
        x = layers.Conv2D(16, 3, activation="relu")(x)
        x = layers.MaxPooling2D(2)(x)
        x = layers.Conv2D(32, 3, activation="relu")(x)
        x = layers.MaxPooling2D(4)(x)
        x = layers.Flatten()(x)
        x = layers.Dropout(dropout)(x)
        return layers.Dense(64, activation="relu")(x)
    if name == "dilated224":
        # Dilated convolutions widen the receptive field without pooling away blending traces.
        for filters, rate in ((32, 1), (32, 2), (64, 2), (64, 4), (128, 4), (128, 8)):
            x = layers.Conv2D(filters, 3, dilation_rate=rate, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.9)(x)
            x = layers.ReLU()(x)
            if rate in (2, 4) and filters in (32, 64):
                x = layers.MaxPooling2D(2)(x)
        return layers.GlobalAveragePooling2D()(x)
    if name == "tiny":
        # momentum 0.7: a smoke run is ~100 steps; with the default 0.99 the inference statistics
        # never catch up and validation scores collapse to one value
        for filters in (16, 32, 64):
            x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization(momentum=0.7)(x)
            x = layers.ReLU()(x)
            x = layers.MaxPooling2D(2)(x)
        return layers.GlobalAveragePooling2D()(x)
    raise InvalidInputError(f"unknown model name {name!r} (known: {', '.join(MODEL_NAMES)})")


def build_model(
    name: str = DEFAULT_MODEL,
    input_size: int | None = None,
    weights: str | None = None,
    dropout: float = 0.2,
    frequency: str | None = None,
) -> object:
    """Build detector ``name`` for ``input_size x input_size`` RGB crops.

    Args:
        name: ``efficientnet_b0`` .. ``efficientnet_b4``, ``xception``, ``resnet50``, ``cnn256``,
            ``dilated224``, ``tiny``, ``vit_b16`` or ``vit_tiny`` (:mod:`training.vit`).
        input_size: ``S``; default: the backbone's own size.
        weights: ``"imagenet"`` to start from ImageNet weights (Keras applications only; Keras
            downloads them once into ``~/.keras/models``), a path to that Keras file (offline), or
            ``None`` for a random initialisation.
        dropout: dropout before the final layer.
        frequency: ``"dct"`` or ``"fft"`` to add the frequency branch (:mod:`training.frequency`);
            ``None``: the backbone alone.

    Returns:
        A ``keras.Model`` mapping pixels 0..255 ``[None, S, S, 3]`` to float32 logits ``[None, 1]``.
    """
    import keras
    from keras import layers

    size = input_size or default_input_size(name)
    default_input_size(name)  # validates the name before anything is built
    if size < 16:
        raise InvalidInputError(f"input size must be at least 16, got {size}")
    inputs = keras.Input(shape=(size, size, 3), dtype="float32", name="images")
    features = _backbone(name, inputs, size, weights, dropout)
    if frequency is not None:
        from training.frequency import FREQUENCY_KINDS, frequency_features

        if frequency not in FREQUENCY_KINDS:
            raise InvalidInputError(f"unknown frequency branch {frequency!r} (known: dct, fft, null)")
        spectrum = frequency_features(inputs, frequency)
        features = layers.Concatenate(name="with_frequency")([features, spectrum])
    x = layers.Dropout(dropout, name="head_dropout")(features)
    logits = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(inputs, logits, name=name)
