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
