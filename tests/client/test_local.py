"""``DetectorClient.local(PATH)``: a TFLite or ONNX export scored in-process, without TensorFlow,
with the same verdicts as the SavedModel of the same model behind the dev server."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import orjson
import pytest

from deepfake_client import contract
from deepfake_client.errors import InvalidInputError, NotFoundError
from tests.conftest import ROOT

pytestmark = [pytest.mark.needs_tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def edge_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, pathlib.Path]:
    """The session dev server's model (``tiny_keras_model()``, margin and threshold by default) as
    a TFLite and an ONNX export."""
    from export.formats.edge import export_edge
    from tests.conftest import tiny_keras_model

    root = tmp_path_factory.mktemp("edge")
    run = root / "run"
    run.mkdir()
    tiny_keras_model().save(run / "model.keras")
    (run / "run.json").write_bytes(orjson.dumps({"backbone": "tiny-test", "threshold": 0.5}))
    return {fmt: pathlib.Path(export_edge(run, fmt, root / fmt).path) for fmt in ("tflite", "onnx")}


SCAN = """
import json, sys
from deepfake_client import DetectorClient
with DetectorClient.local(sys.argv[1]) as client:
    verdict = client.scan(sys.argv[2])
print(json.dumps({"verdict": verdict.to_dict(), "tf": "tensorflow" in sys.modules}))
"""


@pytest.mark.parametrize("fmt", ["tflite", "onnx"])
def test_local_verdict_equals_the_servers_without_tensorflow(
    edge_exports: dict[str, pathlib.Path], devserver, face_video: pathlib.Path, fmt: str
) -> None:
    from deepfake_client import DetectorClient

    done = subprocess.run(
        [sys.executable, "-c", SCAN, str(edge_exports[fmt]), str(face_video)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["tf"] is False
    local = result["verdict"]
    with DetectorClient(devserver.grpc_url) as client:
        served = client.scan(face_video).to_dict()
    assert local["label"] == served["label"] and local["face_count"] == served["face_count"] > 0
    assert local["threshold"] == served["threshold"] == 0.5
    assert abs(local["score"] - served["score"]) <= 1e-4
    for mine, theirs in zip(local["faces"], served["faces"], strict=True):
        assert mine["box"] == theirs["box"] and mine["frame_index"] == theirs["frame_index"]
        assert abs(mine["fake_probability"] - theirs["fake_probability"]) <= 1e-4
    assert local["model_name"] == contract.MODEL_NAME and local["target"] == "label:stable"


def test_local_transport_answers_like_a_server(edge_exports: dict[str, pathlib.Path]) -> None:
    from deepfake_client import DetectorClient
    from deepfake_client.transport.base import Target
    from deepfake_client.transport.local import LocalTransport

    transport = LocalTransport(edge_exports["onnx"] / "model.onnx")  # the file works as the folder
    meta = transport.metadata(Target())
    assert meta.signatures[contract.DEFAULT_SIGNATURE].inputs[contract.IMAGES_INPUT].shape == (-1, 64, 64, 3)
    assert transport.status(Target()) == {0: "AVAILABLE"}
    info = transport.predict(Target(), contract.INFO_SIGNATURE, {contract.INFO_INPUT: np.zeros(2, np.int32)})
    assert info.outputs[contract.INFO_INPUT_SIZE].tolist() == [64, 64]
    with pytest.raises(NotFoundError, match="Unrecognized servable version label"):
        transport.metadata(Target(label=contract.CANARY_LABEL))
    with pytest.raises(NotFoundError):
        transport.metadata(Target(version=7))
    with pytest.raises(InvalidInputError, match="uint8"):
        small = np.zeros((1, 32, 32, 3), np.uint8)
        transport.predict(Target(), contract.DEFAULT_SIGNATURE, {"images": small})
    with pytest.raises(InvalidInputError, match="no signature 'encoded'"):
        transport.predict(Target(), contract.ENCODED_SIGNATURE, {"image_bytes": [b"x"]})
    crops = np.random.default_rng(3).integers(0, 256, (5, 64, 64, 3), dtype=np.uint8)
    with DetectorClient.local(edge_exports["tflite"]) as a, DetectorClient.local(edge_exports["onnx"]) as b:
        va, vb = a.scan_crops(crops), b.scan_crops(crops)
        # a canary share has nothing to go to: the one version answers (and the client says so)
        canary = DetectorClient.local(edge_exports["onnx"], canary_share=1.0)
        assert canary.scan_crops(crops).label == vb.label
    assert va.label == vb.label and abs(va.score - vb.score) <= 1e-5


def test_bad_paths_and_missing_runtime_give_one_clear_error(
    edge_exports: dict[str, pathlib.Path], tmp_path: pathlib.Path, monkeypatch
) -> None:
    from deepfake_client import DetectorClient

    with pytest.raises(NotFoundError, match="no such model file or folder"):
        DetectorClient.local(tmp_path / "nope")
    with pytest.raises(NotFoundError, match="no model.tflite or model.onnx"):
        DetectorClient.local(tmp_path)
    (tmp_path / "model.onnx").write_bytes((edge_exports["onnx"] / "model.onnx").read_bytes())
    with pytest.raises(NotFoundError, match="model.json: missing"):
        DetectorClient.local(tmp_path)
    (tmp_path / "model.json").write_text("{}")
    with pytest.raises(InvalidInputError, match="not the facts file"):
        DetectorClient.local(tmp_path)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(InvalidInputError, match="not a .tflite or .onnx"):
        DetectorClient.local(tmp_path / "notes.txt")
    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # the fault: no LiteRT
    with pytest.raises(InvalidInputError, match=r"pip install 'deepfake-client\[edge\]'"):
        DetectorClient.local(edge_exports["tflite"])
