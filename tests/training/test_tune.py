"""deepfake-tune: a Keras Tuner search of real training runs writes its tables, plot and a best.yaml
that deepfake-train takes; a re-run resumes from the oracle's state; identity-grouped folds; bad
input as one line."""

from __future__ import annotations

import csv
import json

import pytest

from training.cli import train_main
from training.prepare import read_manifest
from training.tune import augmentation, identity_folds
from training.tune_cli import tune_main


@pytest.mark.slow
@pytest.mark.needs_tf
def test_two_trials_write_a_best_yaml_that_deepfake_train_takes(prepared_crops, tmp_path, capsys):
    import yaml

    out = tmp_path / "search"
    argv = ["--config", "smoke", "--set", "epochs=1", "--data", str(prepared_crops), "--out", str(out)]
    assert tune_main([*argv, "--trials", "2", "--backbones", "tiny,cnn256", "--quiet", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["trial"] for row in result["trials"]] == ["0", "1"]
    with (out / "trials.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 and {r["status"] for r in rows} == {"COMPLETED"}
    for row in rows:
        assert 0.0 <= float(row["val_video_auc"]) <= 1.0
        assert 0.0003 <= float(row["learning_rate"]) <= 0.03 and row["batch_size"] in {"16", "32", "64"}
        assert row["backbone"] in {"tiny", "cnn256"} and 0 <= float(row["augment_strength"]) <= 1
        # the score is the trial's own run's validation video AUC, not a number of the tuner's
        run = json.loads((out / "trials" / row["trial"] / "run" / "run.json").read_text())
        assert float(row["val_video_auc"]) == pytest.approx(run["metrics"]["val"]["video"]["roc_auc"])
    assert json.loads((out / "trials.json").read_text()) == result["trials"]
    assert (out / "tuning.png").stat().st_size > 1000
    top = max(r["val_video_auc"] for r in result["trials"])
    assert result["best"]["val_video_auc"] == top  # of equal scores, the first trial's config
    assert result["best"]["trial"] == next(r["trial"] for r in result["trials"] if r["val_video_auc"] == top)

    # deepfake-train takes best.yaml as it is
    run = tmp_path / "run"
    best_yaml = str(out / "best.yaml")
    assert (
        train_main(["--config", best_yaml, "--data", str(prepared_crops), "--out", str(run), "--quiet"]) == 0
    )
    trained = json.loads((run / "run.json").read_text())["config"]
    assert trained == yaml.safe_load((out / "best.yaml").read_text())
    assert trained["backbone"] == result["best"]["config"]["backbone"]
    capsys.readouterr()

    # the same command again resumes from Keras Tuner's oracle: nothing is trained again
    stamp = (out / "trials" / "0" / "run" / "run.json").stat().st_mtime_ns
    assert tune_main([*argv, "--trials", "2", "--backbones", "tiny,cnn256", "--quiet", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["trials"] == result["trials"] and again["best"] == result["best"]
    assert (out / "trials" / "0" / "run" / "run.json").stat().st_mtime_ns == stamp
    # and another search's settings are refused there
    assert tune_main([*argv, "--trials", "2", "--quiet"]) == 2
    assert "holds another search (different backbones)" in capsys.readouterr().err


@pytest.mark.slow
def test_folds_never_put_a_group_in_two_places(prepared_crops, tmp_path):
    folds = identity_folds(prepared_crops, 2, tmp_path, seed=0)
    original = read_manifest(prepared_crops)
    pooled = {r["id"] for r in original if r["split"] in ("train", "val")}
    seen_in_val: list[str] = []
    for fold in folds:
        records = read_manifest(fold)
        groups = {split: {r["group"] for r in records if r["split"] == split} for split in ("train", "val")}
        assert groups["train"] and groups["val"] and not groups["train"] & groups["val"]
        assert {r["label"] for r in records if r["split"] == "val"} == {0, 1}  # stratified
        seen_in_val += [r["id"] for r in records if r["split"] == "val"]
        assert sorted(r["id"] for r in records if r["split"] == "test") == sorted(
            r["id"] for r in original if r["split"] == "test"
        )
        for record in records:  # crops are read where they are, not copied
            assert all(f["file"].startswith(str(prepared_crops.resolve())) for f in record["faces"])
    assert sorted(seen_in_val) == sorted(pooled)  # each video validates in exactly one fold


def test_augmentation_strength_scales_the_default_recipe():
    assert augmentation(0.0) == {"augment": False}
    half, full = augmentation(0.5), augmentation(1.0)
    assert half["rotation_deg"] == 8.0 and full["rotation_deg"] == 16.0 and half["augment"]
    assert full["jpeg_probability"] == 0.6 and augmentation(5.0)["jpeg_probability"] == 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"--trials": "0"}, "--trials must be >= 1"),
        ({"--config": "nope"}, "unknown config preset 'nope'"),
        ({"--data": "missing"}, "missing; is"),
        ({"--folds": "1"}, "--folds must be 0"),
        ({"--backbones": "tiny,vgg"}, "unknown backbone(s) vgg"),
        ({"--out": "taken"}, "exists and is not empty"),
        ({"--distribute": "multi_worker"}, "runs its trials on one host"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(change, message, prepared_crops, tmp_path, capsys):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("the user's")
    options = {
        "--config": "smoke",
        "--data": str(prepared_crops),
        "--out": str(tmp_path / "s"),
        "--trials": "1",
    }
    for key, value in change.items():
        options[key] = str(tmp_path / value) if key in ("--data", "--out") else value
    argv = [part for pair in options.items() for part in pair]
    assert tune_main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert (tmp_path / "taken" / "mine.txt").read_text() == "the user's"
    assert not (tmp_path / "s").exists()
