"""Evaluation a researcher can publish: cross-dataset table, robustness curves, PR and calibration,
per-video predictions, the kept epoch; all in RUN/eval/<name>/, never over the training run's files."""

from __future__ import annotations

import csv
import json
import pathlib
import shutil

import numpy as np
import pytest

from training.cli import evaluate_main
from training.research import chosen_epoch, expected_calibration_error

pytestmark = pytest.mark.needs_tf


def _recompressed_copy(crops: pathlib.Path, out: pathlib.Path, quality: int) -> pathlib.Path:
    """The prepared crops folder with every crop JPEG-recompressed at ``quality`` (a shifted domain)."""
    from PIL import Image

    shutil.copytree(crops, out)
    for path in [p for p in out.rglob("*.png") if p.is_file()]:
        image = Image.open(path).convert("RGB")
        image.save(path.with_suffix(".tmp.jpg"), quality=quality)
        Image.open(path.with_suffix(".tmp.jpg")).save(path)
        path.with_suffix(".tmp.jpg").unlink()
    return out


@pytest.fixture(scope="module")
def trained_run(prepared_crops, tmp_path_factory) -> pathlib.Path:
    """A real smoke run with the frequency branch (the config key through ``train``)."""
    from training.config import load_config
    from training.train import train

    out = tmp_path_factory.mktemp("research") / "run"
    return train(load_config("smoke", ["epochs=2", "frequency=fft"]), prepared_crops, out, verbose=0)


@pytest.mark.slow
def test_cross_dataset_robustness_and_predictions_land_in_their_own_folder(
    trained_run, prepared_crops, tmp_path, capsys
):
    from sklearn.metrics import average_precision_score, roc_auc_score

    shifted = _recompressed_copy(prepared_crops, tmp_path / "jpeg20", 20)
    own = {p.name: p.read_bytes() for p in trained_run.iterdir() if p.suffix in (".png", ".csv", ".keras")}
    argv = [str(trained_run), "--data", str(prepared_crops), "--test-data", f"jpeg20={shifted}"]
    argv += ["--test-data", f"same={prepared_crops}", "--robustness", "jpeg,noise", "--name", "paper"]
    assert evaluate_main([*argv, "--json", "--quiet"]) == 0
    report = json.loads(capsys.readouterr().out)
    folder = trained_run / "eval" / "paper"
    assert pathlib.Path(report["eval_dir"]) == folder
    # the training run's own plots, history and model are untouched
    assert {p.name: p.read_bytes() for p in trained_run.iterdir() if p.name in own} == own
    assert "roc_test.png" in own and "training_curves.png" in own
    # training wrote TensorBoard logs; the run used the frequency branch it was asked for
    assert list((trained_run / "tensorboard" / "train").glob("events.out.tfevents.*"))
    assert list((trained_run / "tensorboard" / "validation").glob("events.out.tfevents.*"))
    assert json.loads((trained_run / "run.json").read_text())["config"]["frequency"] == "fft"

    # per-video predictions: every video of the split once, the report's scores and AUC
    with (folder / "predictions_crops.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == report["video"]["count"] and len({r["video"] for r in rows}) == len(rows)
    labels = np.array([r["label"] == "FAKE" for r in rows], dtype=int)
    scores = np.array([float(r["fake_probability"]) for r in rows])
    assert roc_auc_score(labels, scores) == pytest.approx(report["video"]["roc_auc"], abs=1e-6)
    assert report["average_precision"] == pytest.approx(average_precision_score(labels, scores), abs=1e-6)
    assert report["ece"] == pytest.approx(expected_calibration_error(labels, scores), abs=1e-5)
    threshold = report["video"]["threshold"]
    assert all((r["predicted"] == "FAKE") == (float(r["fake_probability"]) >= threshold) for r in rows)

    # cross-dataset: one row per set; the same set under two names scores the same, JPEG shifts it
    table = report["cross_dataset"]
    assert list(table) == ["crops", "jpeg20", "same"]
    assert table["crops"] == table["same"]
    assert table["crops"]["video_auc"] == report["video"]["roc_auc"]
    assert table["jpeg20"]["log_loss"] != table["crops"]["log_loss"]
    markdown = (folder / "cross_dataset.md").read_text().splitlines()
    assert markdown[0].startswith("| test set |") and len(markdown) == 2 + 3
    with (folder / "cross_dataset.csv").open() as handle:
        assert [r["test_set"] for r in csv.DictReader(handle)] == ["crops", "jpeg20", "same"]

    # robustness: the clean level is the clean score, each perturbed level is scored again
    curves = report["robustness"]
    assert set(curves) == {"jpeg", "noise"}
    for curve in curves.values():
        assert curve["levels"][0]["video_auc"] == report["video"]["roc_auc"]
        assert curve["levels"][0]["frame_auc"] == pytest.approx(report["frame"]["roc_auc"])
    noisy = curves["noise"]["levels"][-1]
    assert noisy["log_loss"] != curves["noise"]["levels"][0]["log_loss"]

    for name in ("roc_crops.png", "pr_jpeg20.png", "calibration_crops.png", "robustness.png"):
        assert (folder / name).stat().st_size > 1000, name
    assert (folder / "training_curves.png").is_file() and report["chosen_epoch"] in (1, 2)
    assert json.loads((folder / "report.json").read_text())["cross_dataset"] == table

    # a second evaluation under the same name is refused with one line, then allowed when asked
    assert evaluate_main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--overwrite" in err[0]
    assert evaluate_main([str(trained_run), "--name", "paper", "--overwrite", "--no-plots", "--quiet"]) == 0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--test-data", "nofolder"], "expected NAME=DIR"),
        (["--test-data", "x=/nonexistent"], "prepare.json: missing"),
        (["--robustness", "fog"], "unknown perturbation 'fog'"),
        (["--name", "../up"], "plain folder name"),
    ],
)
def test_bad_evaluation_options_are_one_line(tmp_path, prepared_crops, capsys, argv, message):
    run = tmp_path / "run"
    run.mkdir()
    config = {"backbone": "tiny", "input_size": 64, "weights": None}
    info = {"config": config, "dataset": {"path": str(prepared_crops)}, "threshold": 0.5, "input_size": 64}
    (run / "run.json").write_text(json.dumps(info))
    assert evaluate_main([str(run), "--quiet", *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (run / "eval").exists()


def test_calibration_error_and_kept_epoch(tmp_path):
    labels = np.array([0] * 50 + [1] * 50)
    assert expected_calibration_error(labels, np.full(100, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(np.zeros(10), np.full(10, 0.9)) == pytest.approx(0.9)
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_auc,val_loss\n0,1,0.7,0.9\n1,1,0.9,0.5\n2,1,0.9,0.6\n3,1,0.8,0.4\n")
    assert chosen_epoch(history, "auc") == 2  # the first best: Keras keeps it (strict improvement)
    assert chosen_epoch(history, "loss") == 4
    assert chosen_epoch(tmp_path / "none.csv", "auc") is None


def test_perturbations_do_what_they_say():
    import tensorflow as tf

    from training.robustness import perturb

    rng = np.random.default_rng(0)
    image = tf.constant(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    checker = tf.constant(np.kron((np.indices((16, 16)).sum(0) % 2) * 255, np.ones((2, 2)))[..., None]
                          .repeat(3, -1).astype(np.uint8))  # fmt: skip
    grey = tf.constant(np.full((64, 64, 3), 128, np.uint8))
    for kind, clean in (("jpeg", 100), ("downscale", 1.0), ("blur", 0.0), ("noise", 0.0)):
        assert perturb(image, kind, clean) is image
    seed = tf.constant([0, 7], tf.int64)
    noisy = perturb(grey, "noise", 16.0, seed).numpy().astype(float)
    assert 14.0 < noisy.std() < 18.0 and np.array_equal(noisy, perturb(grey, "noise", 16.0, seed).numpy())
    # 2-pixel checks vanish at an eighth of the side and under a wide blur; JPEG changes pixels
    assert perturb(checker, "downscale", 0.125).numpy().std() < 0.1 * checker.numpy().std()
    assert perturb(checker, "blur", 3.0).numpy().std() < 0.1 * checker.numpy().std()
    assert perturb(image, "jpeg", 10).dtype == tf.uint8
    assert np.abs(perturb(image, "jpeg", 10).numpy().astype(int) - image.numpy()).mean() > 10
