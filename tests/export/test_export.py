"""The exported SavedModel meets Contract 2, as TensorFlow's and TF Serving's own tools see it."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import orjson
import pytest

from deepfake_client import contract
from deepfake_client.errors import InvalidInputError, NotFoundError

pytestmark = pytest.mark.needs_tf


def test_signatures_give_keras_scores(exported_version: pathlib.Path) -> None:
    import tensorflow as tf

    from tests.conftest import tiny_keras_model

    loaded = tf.saved_model.load(str(exported_version))
    assert set(loaded.signatures) == {"serving_default", "encoded", "model_info"}
    images = np.random.default_rng(5).integers(0, 256, size=(5, 64, 64, 3), dtype=np.uint8)
    served = loaded.signatures["serving_default"](images=tf.constant(images))
    keras_logits = (
        tiny_keras_model()(images.astype(np.float32)).numpy().reshape(-1)
    )  # same seed, same weights
    np.testing.assert_allclose(served["logit"].numpy(), keras_logits, atol=1e-5)
    np.testing.assert_allclose(served["fake_probability"].numpy(), 1 / (1 + np.exp(-keras_logits)), atol=1e-6)
    pngs = tf.constant([tf.io.encode_png(i).numpy() for i in images])
    from_png = loaded.signatures["encoded"](image_bytes=pngs)
    np.testing.assert_allclose(
        from_png["fake_probability"].numpy(), served["fake_probability"].numpy(), atol=1e-6
    )
    info = loaded.signatures["model_info"](batch=tf.constant([0, 0, 0]))
    assert info["input_size"].numpy().tolist() == [64, 64, 64]
    np.testing.assert_allclose(info["crop_margin"].numpy(), contract.DEFAULT_CROP_MARGIN)


def test_encoded_resizes_other_sizes(exported_version: pathlib.Path) -> None:
    import tensorflow as tf

    loaded = tf.saved_model.load(str(exported_version))
    big = np.random.default_rng(1).integers(0, 256, size=(100, 80, 3), dtype=np.uint8)
    out = loaded.signatures["encoded"](image_bytes=tf.constant([tf.io.encode_jpeg(big).numpy()]))
    assert out["fake_probability"].shape == (1,)


@pytest.mark.slow
def test_saved_model_cli_shows_the_contract(exported_version: pathlib.Path) -> None:
    cli = shutil.which(
        "saved_model_cli", path=os.pathsep.join([os.path.dirname(sys.executable), os.environ.get("PATH", "")])
    )
    if cli is None:
        pytest.skip("saved_model_cli is not on PATH")
    shown = subprocess.run(
        [cli, "show", "--dir", str(exported_version), "--all"], capture_output=True, text=True, check=True
    ).stdout
    compact = " ".join(shown.split())
    assert "signature_def['serving_default']" in compact
    assert "inputs['images'] tensor_info: dtype: DT_UINT8 shape: (-1, 64, 64, 3)" in compact
    assert "outputs['fake_probability'] tensor_info: dtype: DT_FLOAT shape: (-1)" in compact
    assert "outputs['logit'] tensor_info: dtype: DT_FLOAT shape: (-1)" in compact
    assert "inputs['image_bytes'] tensor_info: dtype: DT_STRING shape: (-1)" in compact
    assert "inputs['batch'] tensor_info: dtype: DT_INT32 shape: (-1)" in compact
    assert "jit_compile" not in compact or "jit_compile: true" not in compact.lower()


def test_warmup_parses_with_official_prediction_log_and_every_record_runs(
    exported_version: pathlib.Path,
) -> None:
    import tensorflow as tf

    prediction_log_pb2 = pytest.importorskip("tensorflow_serving.apis.prediction_log_pb2")
    loaded = tf.saved_model.load(str(exported_version))
    records = [
        prediction_log_pb2.PredictionLog.FromString(raw.numpy())
        for raw in tf.data.TFRecordDataset(str(exported_version / contract.WARMUP_FILE))
    ]
    assert {r.predict_log.request.model_spec.signature_name for r in records} == {
        "serving_default",
        "encoded",
        "model_info",
    }
    batch_sizes = set()
    for record in records:
        request = record.predict_log.request
        assert request.model_spec.name == contract.MODEL_NAME
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        outputs = loaded.signatures[request.model_spec.signature_name](
            **{k: tf.constant(v) for k, v in inputs.items()}
        )
        first = next(iter(inputs.values()))
        assert all(o.shape[0] == first.shape[0] for o in outputs.values())
        batch_sizes.add((request.model_spec.signature_name, first.shape[0]))
    assert {("serving_default", 1), ("serving_default", 8), ("serving_default", 32)} <= batch_sizes


def test_metadata_describes_the_version(exported_version: pathlib.Path) -> None:
    meta = orjson.loads((exported_version / contract.METADATA_FILE).read_bytes())
    assert meta["version"] == int(exported_version.name)
    assert meta["input_size"] == 64 and meta["backbone"] == "tiny-test"
    assert meta["validation"]["max_abs_diff_keras"] <= meta["validation"]["tolerance"]
    assert meta["tensorflow_version"].startswith("2.20")


def test_export_run_and_cli(tmp_path: pathlib.Path) -> None:
    from export.cli import main
    from tests.conftest import tiny_keras_model

    run = tmp_path / "run"
    run.mkdir()
    tiny_keras_model(input_size=32).save(run / "model.keras")
    (run / "run.json").write_bytes(orjson.dumps({"backbone": "tiny", "crop_margin": 0.25, "threshold": 0.6}))
    repository = tmp_path / "models"
    assert main([str(run), "--repository", str(repository), "--json"]) == 0
    meta = orjson.loads((repository / "deepfake_detector/1" / contract.METADATA_FILE).read_bytes())
    assert (meta["input_size"], meta["crop_margin"], meta["threshold"]) == (32, 0.25, 0.6)
    # A version that exists: exit 2, nothing changes.
    assert main([str(run), "--repository", str(repository), "--version", "1"]) == 2
    assert sorted(p.name for p in (repository / "deepfake_detector").iterdir() if p.name.isdigit()) == ["1"]


def test_bad_runs_are_refused_with_clear_errors(tmp_path: pathlib.Path) -> None:
    import keras

    from export.version import export_model, read_run

    with pytest.raises(NotFoundError, match="no such run folder"):
        read_run(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(NotFoundError, match="model.keras"):
        read_run(tmp_path / "empty")
    flat = keras.Sequential([keras.Input((10,)), keras.layers.Dense(1)])
    with pytest.raises(InvalidInputError, match="not \\[batch, S, S, 3\\]"):
        export_model(flat, tmp_path / "models")
    assert not (tmp_path / "models").exists()


def test_another_model_name_is_recorded_in_model_json_and_warmup(tmp_path: pathlib.Path) -> None:
    from export.version import export_model
    from export.warmup import read_warmup
    from tests.conftest import tiny_keras_model

    result = export_model(tiny_keras_model(input_size=32), tmp_path / "models", model_name="other_detector")
    version = pathlib.Path(result.path)
    assert version.parent.name == "other_detector"
    assert orjson.loads((version / contract.METADATA_FILE).read_bytes())["model_name"] == "other_detector"
    names = {
        record.predict_log.request.model_spec.name for record in read_warmup(version / contract.WARMUP_FILE)
    }
    assert names == {"other_detector"}
