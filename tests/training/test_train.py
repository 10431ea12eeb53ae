"""Training runs: an interrupted run resumes where it stopped; a changed config is refused."""

from __future__ import annotations

import csv
import json

import pytest

from deepfake_client.errors import InvalidInputError
from training.config import load_config
from training.train import train


@pytest.mark.slow
@pytest.mark.needs_tf
def test_interrupted_run_resumes_at_the_next_epoch(prepared_crops, tmp_path, monkeypatch):
    import keras

    config = load_config("smoke", ["epochs=4", "early_stopping_patience=10"])
    run = tmp_path / "run"
    original = keras.callbacks.CSVLogger.on_epoch_end

    def crash_after_second_epoch(self, epoch, logs=None):  # the injected fault: a crash mid-run
        original(self, epoch, logs)
        if epoch == 1:
            raise RuntimeError("injected crash")

    monkeypatch.setattr(keras.callbacks.CSVLogger, "on_epoch_end", crash_after_second_epoch)
    with pytest.raises(RuntimeError, match="injected crash"):
        train(config, prepared_crops, run, verbose=0)
    assert not (run / "run.json").exists() and (run / "checkpoints" / "backup").is_dir()
    with pytest.raises(InvalidInputError, match="another config"):
        train(load_config("smoke", ["epochs=5"]), prepared_crops, run, verbose=0)
    monkeypatch.undo()

    train(config, prepared_crops, run, verbose=0)
    with (run / "history.csv").open() as handle:
        epochs = [int(row["epoch"]) for row in csv.DictReader(handle)]
    assert epochs == [0, 1, 2, 3]  # resumed at epoch 2, nothing trained twice
    info = json.loads((run / "run.json").read_text())
    assert info["training"]["epochs"] == 4
    assert not (run / "checkpoints" / "backup").exists()
    assert set(info["metrics"]) == {"val", "test"}


@pytest.mark.slow
@pytest.mark.needs_tf
def test_same_data_and_seed_give_the_same_weights_and_metrics(prepared_crops, tmp_path):
    import shutil

    import keras
    import numpy as np

    # The same crops with the manifest in another order, as a parallel preparation writes it.
    reordered = tmp_path / "reordered"
    shutil.copytree(prepared_crops, reordered)
    lines = (reordered / "manifest.jsonl").read_text().splitlines()
    (reordered / "manifest.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    config = load_config("smoke", ["epochs=3"])
    runs = [
        train(config, data, tmp_path / f"run{i}", verbose=0)
        for i, data in enumerate([prepared_crops, reordered])
    ]

    weights = [keras.models.load_model(run / "model.keras", compile=False).get_weights() for run in runs]
    assert len(weights[0]) == len(weights[1]) > 0
    for a, b in zip(*weights, strict=True):
        np.testing.assert_array_equal(a, b)
    infos = [json.loads((run / "run.json").read_text()) for run in runs]
    assert infos[0]["metrics"] == infos[1]["metrics"] and infos[0]["threshold"] == infos[1]["threshold"]
    histories = [(run / "history.csv").read_text() for run in runs]
    assert histories[0] == histories[1]
