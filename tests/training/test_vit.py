"""ViT backbones from Keras layers: ViT-B/16's exact size, and a small ViT that reloads, runs
under mixed precision and exports like the CNNs (uint8 pixels in, one logit out)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from training.models import build_model, default_input_size

pytestmark = pytest.mark.needs_tf


@pytest.mark.slow
def test_vit_b16_has_the_published_shape():
    model = build_model("vit_b16")  # random initialisation: nothing is downloaded
    assert default_input_size("vit_b16") == 224 and tuple(model.input_shape) == (None, 224, 224, 3)
    # ViT-B/16 without its classifier: 85,798,656 parameters (196 patches + the class token), + our head
    assert model.count_params() == 85_798_656 + 768 + 1
    assert model.get_layer("position_embedding").embedding.shape == (1, 197, 768)
    assert len([layer for layer in model.layers if layer.name.endswith("_attention")]) == 12


@pytest.mark.slow
def test_small_vit_reloads_and_exports(tmp_path):
    import keras
    import tensorflow as tf

    from export.version import export_model
    from training.evaluate import load_run_model

    model = build_model("vit_tiny", weights=None)
    x = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)
    y = np.asarray(model(x))
    assert y.shape == (3, 1) and y.dtype == np.float32 and np.ptp(y) > 0  # depends on the image
    np.testing.assert_allclose(np.asarray(model(x.astype(np.float32))), y, atol=1e-5)
    run = tmp_path / "run"
    run.mkdir()
    model.save(run / "model.keras")
    again = load_run_model(run)
    np.testing.assert_allclose(np.asarray(again(x)), y, atol=1e-5)
    result = export_model(again, tmp_path / "repo", backbone="vit_tiny", threshold=0.5)
    loaded = tf.saved_model.load(str(pathlib.Path(result.path)))
    served = loaded.signatures["serving_default"](images=tf.constant(x))
    np.testing.assert_allclose(served["logit"].numpy(), y.ravel(), atol=1e-4)

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_model("vit_tiny", 32)
        assert np.asarray(mixed(np.zeros((1, 32, 32, 3), np.uint8))).dtype == np.float32
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_vit_refuses_what_it_cannot_take():
    from training.config import load_config

    with pytest.raises(InvalidInputError, match="multiple of its patch"):
        build_model("vit_b16", 200)
    with pytest.raises(InvalidInputError, match="no pretrained weights"):
        load_config("tiny", ["backbone=vit_b16", "weights=imagenet"])
    assert load_config("tiny", ["backbone=vit_tiny"]).resolved_input_size() == 64
