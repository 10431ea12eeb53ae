"""Edge exports (``deepfake-export --format tflite|onnx|tfjs``): each format passes parity with the
SavedModel of the same run, writes the version's facts beside the file, and refuses what it must.

The run is the smoke preset trained for a few epochs on generated data, so int8 calibrates on real
training crops and parity adds the run's test crops to the golden batch.
"""

from __future__ import annotations

import pathlib

import numpy as np
import orjson
import pytest

from deepfake_client import contract

pytestmark = [pytest.mark.needs_tf, pytest.mark.slow]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A finished smoke run (64x64 crops) with its prepared crops folder recorded in run.json."""
    from training.config import load_config
    from training.prepare import prepare_dataset
    from training.synthetic import generate_dataset
    from training.train import train

    root = tmp_path_factory.mktemp("edge-run")
    dataset = generate_dataset(root / "videos", 4, frames=6, images_per_class=1)
    crops = root / "crops"
    prepare_dataset("folder", dataset, crops, size=64, frames=4, workers=1, progress=False)
    run = root / "run"
    train(load_config("smoke", ["epochs=3"]), crops, run, verbose=0)
    return run


def export(run: pathlib.Path, out: pathlib.Path, *args: str, capsys=None) -> tuple[int, dict]:  # type: ignore[no-untyped-def]
    from export.cli import main

    code = main([str(run), "--out", str(out), "--json", *args])
    result = orjson.loads(capsys.readouterr().out) if capsys and code == 0 else {}
    return code, result


@pytest.mark.parametrize(
    ("fmt", "quantize", "file"),
    [
        ("tflite", None, "model.tflite"),
        ("tflite", "float16", "model.tflite"),
        ("tflite", "int8", "model.tflite"),
        ("onnx", None, "model.onnx"),
        ("tfjs", None, "model.onnx"),
    ],
)
def test_format_passes_parity_with_the_facts_beside_it(
    trained_run: pathlib.Path, tmp_path: pathlib.Path, capsys, fmt: str, quantize: str | None, file: str
) -> None:
    from deepfake_client.transport.local import EdgeModel
    from export.metadata import golden_images
    from export.version import read_run

    out = tmp_path / "edge"
    extra = ["--quantize", quantize] if quantize else []
    code, result = export(trained_run, out, "--format", fmt, *extra, capsys=capsys)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([file, "model.json", "parity.json"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".incoming")]
    run_info = orjson.loads((trained_run / "run.json").read_bytes())
    facts = orjson.loads((out / "model.json").read_bytes())
    assert (facts["input_size"], facts["crop_margin"], facts["threshold"]) == (
        64,
        run_info["crop_margin"],
        run_info["threshold"],
    )
    assert facts["format"] == fmt and facts["quantize"] == quantize and facts["file"] == file
    assert facts["runtime"] == {"tflite": "litert", "onnx": "onnxruntime", "tfjs": "onnxruntime-web"}[fmt]
    report = orjson.loads((out / "parity.json").read_bytes())
    assert report == result["parity"] and report["passed"]
    assert report["sources"]["golden"] == 8 and report["sources"]["test_crops"] > 0
    goal = 0.02 if quantize else 1e-4
    assert report["max_abs_diff"] <= goal and report["label_agreement"] >= 0.99
    assert report["size_bytes"] == (out / file).stat().st_size > 0
    assert report["latency_ms_per_crop"] > 0 and report["saved_model_latency_ms_per_crop"] > 0
    # The file itself, run again here against the Keras model of the run.
    model, _ = read_run(trained_run)
    golden = golden_images(64)
    keras_p = 1 / (1 + np.exp(-np.asarray(model(golden.astype(np.float32), training=False)).reshape(-1)))
    edge_p = EdgeModel(out)(golden)[contract.PROBABILITY_OUTPUT]
    assert np.max(np.abs(edge_p - keras_p)) <= goal + 1e-5
    if quantize == "float16":
        float_out = tmp_path / "float32"
        assert export(trained_run, float_out, "--format", "tflite")[0] == 0
        assert (out / file).stat().st_size < (float_out / file).stat().st_size


def test_keras_application_backbone_converts_with_parity(tmp_path: pathlib.Path) -> None:
    """EfficientNet-B0 (Keras applications, untrained) through TFLite and ONNX: its Normalization
    layer's captured constants are what a converter handed the unfrozen function got wrong."""
    from export.formats import format_module
    from export.formats.parity import check_parity
    from export.metadata import golden_images
    from export.signatures import build_serving_module, save_serving_model
    from training.models import build_model

    size = 64  # the constants are what matters, not the size: 64 px halves the conversion's CI time
    saved = tmp_path / "saved_model"
    save_serving_model(build_serving_module(build_model("efficientnet_b0", size), size, 0.3, 0.5), saved)
    for fmt in ("tflite", "onnx"):
        folder = tmp_path / fmt
        folder.mkdir()
        file = format_module(fmt).convert(saved, folder)
        (folder / "model.json").write_bytes(
            orjson.dumps({"input_size": size, "crop_margin": 0.3, "threshold": 0.5})
        )
        report = check_parity(file, saved, golden_images(size), threshold=0.5, quantized=False)
        assert report["passed"] and report["max_abs_diff"] <= 1e-4, (fmt, report)


def test_cli_prints_the_parity_report(trained_run: pathlib.Path, tmp_path: pathlib.Path, capsys) -> None:
    from export.cli import main

    assert main([str(trained_run), "--format", "onnx", "--out", str(tmp_path / "o")]) == 0
    shown = capsys.readouterr().out
    assert "parity passed" in shown and "labels alike 100.0 %" in shown and "latency per crop" in shown


def test_tfjs_says_what_it_writes_instead(trained_run: pathlib.Path, tmp_path: pathlib.Path, capsys) -> None:
    assert export(trained_run, tmp_path / "web", "--format", "tfjs")[0] == 0
    err = capsys.readouterr().err
    assert "tensorflowjs cannot be installed" in err and "onnxruntime-web" in err


def test_refusals_leave_everything_as_it_was(
    trained_run: pathlib.Path, tmp_path: pathlib.Path, capsys, monkeypatch
) -> None:
    from export.cli import main

    run = str(trained_run)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("the user's")
    assert main([run, "--format", "onnx", "--out", str(busy)]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["mine.txt"]
    for args in (
        ["--format", "onnx", "--out", str(tmp_path / "a"), "--quantize", "int8"],
        ["--format", "savedmodel", "--out", str(tmp_path / "a")],
        ["--format", "onnx"],
        ["--format", "tflite", "--out", str(tmp_path / "a"), "--repository", str(tmp_path / "m")],
    ):
        assert main([run, *args]) == 2, args
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("deepfake-export: error (exit 2)"), err
    # int8 without the run's crops: exit 3, one line.
    int8 = ["--format", "tflite", "--quantize", "int8", "--out", str(tmp_path / "a")]
    assert main([run, *int8, "--data", "/nope"]) == 3
    assert "pass --data DIR" in capsys.readouterr().err
    # A conversion whose parity fails (the fault: a zero tolerance): exit 2, nothing written.
    import export.formats.parity as parity

    monkeypatch.setattr(parity, "FLOAT_TOLERANCE", 0.0)
    code = main([run, "--format", "onnx", "--out", str(tmp_path / "failed")])
    err = capsys.readouterr().err
    if code == 0:  # the conversion happened to be exact: nothing to refuse
        pytest.skip("the ONNX conversion was bit-exact; no parity failure to provoke")
    assert code == 2 and "parity failed" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_readme_edge_section_runs(
    trained_run: pathlib.Path, tmp_path: pathlib.Path, face_video: pathlib.Path, capsys
) -> None:
    """README's "Edge and browser" exports and its Python example, with local paths."""
    import re
    import shlex

    from export.cli import main
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    start = readme.index("## Edge and browser")
    text = readme[start : readme.index("\n## ", start + 1)]
    bash = "\n".join(re.findall(r"```bash\n(.*?)```", text, re.S))
    exports = [line.split("#")[0].strip() for line in bash.splitlines() if line.startswith("deepfake-export")]
    assert len(exports) == 4
    local = lambda s: s.replace("runs/r1", str(trained_run)).replace("edge/", f"{tmp_path}/edge/")  # noqa: E731
    for command in exports:
        assert main(shlex.split(local(command))[1:]) == 0, command
    capsys.readouterr()
    (snippet,) = re.findall(r"```python\n(.*?)```", text, re.S)
    namespace: dict = {}
    exec(local(snippet).replace("clip.mp4", str(face_video)), namespace)  # noqa: S102
    assert namespace["verdict"].label in (contract.FAKE, contract.REAL) and namespace["verdict"].faces
