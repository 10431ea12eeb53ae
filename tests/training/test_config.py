"""Presets load into a frozen dataclass; unknown keys and bad values are refused with the file named."""

from __future__ import annotations

import dataclasses

import pytest

from deepfake_client.errors import InvalidInputError
from training.cli import train_main
from training.config import CONFIG_DIR, TrainConfig, load_config, parse_overrides


def test_every_preset_loads():
    names = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
    assert {"smoke", "efficientnet_b0", "sbi"} <= set(names)
    for name in names:
        config = load_config(name)
        assert isinstance(config, TrainConfig) and config.resolved_input_size() >= 16
    smoke = load_config("smoke")
    assert smoke.backbone == "tiny" and smoke.input_size == 64
    with pytest.raises(dataclasses.FrozenInstanceError):
        smoke.epochs = 3  # type: ignore[misc]


def test_overrides_are_typed():
    config = load_config("smoke", ["epochs=3", "weights=null", "learning_rate=1", "sbi=true"])
    assert (config.epochs, config.weights, config.learning_rate, config.sbi) == (3, None, 1.0, True)
    assert isinstance(config.learning_rate, float)
    assert parse_overrides(["backbone=xception"]) == {"backbone": "xception"}
    with pytest.raises(InvalidInputError, match="'epochs' must be int"):
        load_config("smoke", ["epochs=many"])
    with pytest.raises(InvalidInputError, match="expected key=value"):
        load_config("smoke", ["epochs"])


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("backbone: tiny\nlearning_rat: 0.1\n")
    with pytest.raises(InvalidInputError, match=r"mine\.yaml: unknown config key 'learning_rat'"):
        load_config(str(path))


def test_cli_bad_config_exit_2_nothing_written(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("backbone: vgg16\n")
    out = tmp_path / "run"
    assert train_main(["--config", str(path), "--data", str(tmp_path), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown model name 'vgg16'" in err[0] and "bad.yaml" in err[0]
    assert (
        train_main(["--config", "smoke", "--set", "colour=1", "--data", str(tmp_path), "--out", str(out)])
        == 2
    )
    assert "unknown config key 'colour'" in capsys.readouterr().err
    assert train_main(["--config", "smoke", "--data", str(tmp_path), "--out", str(out), "--quiet"]) == 2
    assert "prepare.json: missing" in capsys.readouterr().err
    assert not out.exists()


def test_evaluate_missing_run_is_not_found(tmp_path, capsys):
    from training.cli import evaluate_main

    assert evaluate_main([str(tmp_path / "nope"), "--quiet"]) == 3
    assert "no such run folder" in capsys.readouterr().err
    (tmp_path / "run").mkdir()
    assert evaluate_main([str(tmp_path / "run"), "--quiet"]) == 3
    assert "run.json: missing" in capsys.readouterr().err
