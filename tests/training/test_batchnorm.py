"""Population batch-norm statistics: the moving averages become the exact statistics of the data."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.mark.needs_tf
def test_population_statistics_are_the_exact_mean_and_variance_layer_after_layer():
    import keras

    from training.batchnorm import batchnorm_layers, set_population_statistics
    from training.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("tiny", 32)
    images = np.random.default_rng(0).integers(0, 256, (40, 32, 32, 3)).astype(np.float32)
    assert set_population_statistics(model, images, chunk=16) == 3  # chunks of 16, 16, 8 merged
    for layer in batchnorm_layers(model):
        inputs = keras.Model(model.inputs, layer.input)(images, training=False).numpy().astype(np.float64)
        inputs = inputs.reshape(-1, inputs.shape[-1])
        np.testing.assert_allclose(layer.moving_mean.numpy(), inputs.mean(axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), inputs.var(axis=0), rtol=1e-3, atol=1e-5)
    # the last layer's normalised output is standard over the data, as in training mode
    last = batchnorm_layers(model)[-1]
    normalised = keras.Model(model.inputs, last.output)(images, training=False).numpy()
    assert np.abs(normalised.reshape(-1, normalised.shape[-1]).mean(axis=0)).max() < 1e-3


def conv_bn(channels_in: int, kernel: int):  # type: ignore[no-untyped-def]
    """A small functional model (convolution, then batch norm) to nest inside another, 8x8 inputs."""
    import keras

    inputs = keras.Input((8, 8, channels_in))
    return keras.Model(inputs, keras.layers.BatchNormalization()(keras.layers.Conv2D(4, kernel)(inputs)))


@pytest.mark.needs_tf
def test_batchnorm_layers_inside_nested_models_get_their_statistics_too():
    """Keras-application backbones are nested models: their batch-norm layers are reached too."""
    import keras

    from training.batchnorm import batchnorm_layers, batchnorm_probes, set_population_statistics
    from training.models import build_model

    keras.utils.set_random_seed(0)
    inner = conv_bn(channels_in=4, kernel=3)
    outer_in = keras.Input((8, 8, 3))
    x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 1)(outer_in))
    x = keras.layers.BatchNormalization()(inner(x))
    model = keras.Model(outer_in, keras.layers.Dense(1)(keras.layers.GlobalAveragePooling2D()(x)))
    images = np.random.default_rng(1).normal(3.0, 2.0, (24, 8, 8, 3)).astype(np.float32)
    assert set_population_statistics(model, images, chunk=10) == 3
    for layer, probe in batchnorm_probes(model):
        inputs = np.asarray(probe(images, training=False), np.float64).reshape(-1, 4)
        np.testing.assert_allclose(layer.moving_mean.numpy(), inputs.mean(axis=0), rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(layer.moving_variance.numpy(), inputs.var(axis=0), rtol=1e-3, atol=1e-5)
    # computed by hand: the nested layer's input is the inner conv over the outer conv + batch norm
    conv, norm, inner_conv, inner_norm = model.layers[1], model.layers[2], inner.layers[1], inner.layers[2]
    assert inner_norm in batchnorm_layers(model)
    by_hand = np.asarray(inner_conv(norm(conv(images), training=False)), np.float64).reshape(-1, 4)
    np.testing.assert_allclose(inner_norm.moving_mean.numpy(), by_hand.mean(axis=0), rtol=1e-4, atol=1e-5)
    backbone = build_model("efficientnet_b0", 32)  # weights=None: built offline
    assert len(batchnorm_layers(backbone)) == 49  # all inside the nested EfficientNet


@pytest.mark.needs_tf
def test_a_nested_model_called_elsewhere_first_is_measured_where_this_model_calls_it():
    import keras

    from deepfake_client.errors import InvalidInputError
    from training.batchnorm import set_population_statistics

    keras.utils.set_random_seed(0)
    inner = conv_bn(channels_in=3, kernel=1)
    x = keras.Input((8, 8, 3))
    keras.Model(x, inner(x))  # a feature extractor built first, on the raw input
    model = keras.Model(x, inner(keras.layers.Rescaling(0.5)(x)))  # the trained model halves it first
    images = np.random.default_rng(2).normal(3.0, 2.0, (24, 8, 8, 3)).astype(np.float32)
    assert set_population_statistics(model, images) == 1
    norm = inner.layers[-1]
    by_hand = np.asarray(inner.layers[1](images * 0.5), np.float64).reshape(-1, 4)
    np.testing.assert_allclose(norm.moving_mean.numpy(), by_hand.mean(axis=0), rtol=1e-4, atol=1e-5)

    shared = keras.layers.BatchNormalization()  # one layer, two calls: no single population
    twice = keras.Model(x, keras.layers.Concatenate()([shared(x), shared(x * 2.0)]))
    with pytest.raises(InvalidInputError, match="called 2 times"):
        set_population_statistics(twice, images)


@pytest.mark.needs_tf
def test_repeated_updates_with_an_uneven_last_chunk_do_not_retrace(caplog):  # type: ignore[no-untyped-def]
    """The callback updates before every validation; TensorFlow's retracing warning stays silent."""
    import logging

    import keras

    from training.batchnorm import population_statistics_callback

    inputs = keras.Input((16, 16, 3))
    x = inputs
    for _ in range(6):
        x = keras.layers.BatchNormalization()(keras.layers.Conv2D(4, 3, padding="same")(x))
    model = keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x))
    images = np.random.default_rng(0).random((300, 16, 16, 3), np.float32)  # 256 + 44
    callback = population_statistics_callback(images)
    callback.set_model(model)
    with caplog.at_level(logging.WARNING, logger="tensorflow"):
        for _ in range(3):
            callback.on_test_begin()
    assert "retracing" not in caplog.text
