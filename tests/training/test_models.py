"""Models by name: uint8 pixels in, one float32 logit out, reloadable with no custom objects."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from training.models import build_model, default_input_size

pytestmark = pytest.mark.needs_tf


@pytest.mark.parametrize("name", ["tiny", "cnn256", "dilated224"])
def test_small_models(name, tmp_path):
    import keras

    model = build_model(name)
    size = default_input_size(name)
    assert tuple(model.input_shape) == (None, size, size, 3) and tuple(model.output_shape) == (None, 1)
    x = np.random.default_rng(0).integers(0, 256, (2, size, size, 3), dtype=np.uint8)
    y = np.asarray(model(x))
    assert y.shape == (2, 1) and y.dtype == np.float32
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras", compile=False)
    np.testing.assert_allclose(np.asarray(again(x)), y, atol=1e-6)
    # normalisation is inside: float pixels 0..255 give the same logits as uint8
    np.testing.assert_allclose(np.asarray(model(x.astype(np.float32))), y, atol=1e-5)


def test_float32_logit_under_mixed_precision():
    import keras

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model("tiny", 32)
        assert model.get_layer("logit").dtype_policy.compute_dtype == "float32"
        assert np.asarray(model(np.zeros((1, 32, 32, 3), np.uint8))).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["efficientnet_b0", "xception", "resnet50"])
def test_keras_application_backbones(name):
    model = build_model(name, input_size=96)
    y = np.asarray(model(np.zeros((1, 96, 96, 3), np.uint8)))
    assert y.shape == (1, 1) and np.isfinite(y).all()


def test_unknown_model_name():
    with pytest.raises(InvalidInputError, match="unknown model name 'vgg'"):
        build_model("vgg")
