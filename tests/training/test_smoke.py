"""The whole training chain on generated data with the smoke preset, through the CLIs, on 2 CPU cores."""

from __future__ import annotations

import json
import time

import pytest

from training.cli import evaluate_main, train_main
from training.prepare import prepare_dataset
from training.synthetic import generate_dataset


@pytest.mark.slow
@pytest.mark.needs_tf
def test_smoke_preset_trains_evaluates_and_reports_in_under_two_minutes(tmp_path, capsys):
    started = time.monotonic()
    data = generate_dataset(tmp_path / "data", 24, frames=6)
    crops = tmp_path / "crops"
    prepare_dataset("folder", data, crops, size=64, frames=6, workers=2, progress=False)
    run = tmp_path / "runs" / "r1"
    assert (
        train_main(["--config", "smoke", "--data", str(crops), "--out", str(run), "--quiet", "--json"]) == 0
    )
    trained = json.loads(capsys.readouterr().out)
    assert evaluate_main([str(run), "--data", str(crops), "--split", "test", "--quiet", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    elapsed = time.monotonic() - started
    assert elapsed < 120, f"the smoke chain took {elapsed:.0f} s"

    info = json.loads((run / "run.json").read_text())
    assert info["backbone"] == "tiny" and info["input_size"] == 64 and info["crop_margin"] == 0.3
    assert 0.0 < info["threshold"] < 1.0 and info["threshold"] == trained["threshold"]
    assert info["config"]["backbone"] == "tiny" and info["dataset"]["train_crops"] > 100
    assert info["dataset"]["detector"]["follow"]["full_every"] == 8  # recorded for the model's users
    for name in (
        "model.keras",
        "config.yaml",
        "history.csv",
        "training_curves.png",
        "roc_val.png",
        "confusion_test.png",
        "eval_test.json",
        "checkpoints/best.keras",
    ):
        assert (run / name).is_file(), name
    # the pipeline learns something real: the blending artefact, on videos it never saw
    val_auc = info["metrics"]["val"]["frame"]["roc_auc"]
    assert val_auc > 0.8, f"validation AUC {val_auc:.3f}"
    assert report["frame"]["count"] > 20 and report["video"]["count"] >= 8
    assert report["frame"]["roc_auc"] > 0.7, report["frame"]
    print(f"smoke: {elapsed:.0f} s, val AUC {val_auc:.3f}, test AUC {report['frame']['roc_auc']:.3f}")

    # a finished run is left alone when the command is repeated
    mtime = (run / "model.keras").stat().st_mtime_ns
    assert train_main(["--config", "smoke", "--data", str(crops), "--out", str(run), "--quiet"]) == 0
    assert (run / "model.keras").stat().st_mtime_ns == mtime
