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
