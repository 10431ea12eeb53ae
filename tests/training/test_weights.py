"""Pretrained backbones: ImageNet by default for Keras applications, one line when offline, a local file."""

from __future__ import annotations

import pathlib
import re

import numpy as np
import pytest

from deepfake_client.errors import InvalidInputError
from training.config import CONFIG_DIR, load_config
from training.models import PRETRAINED, build_model

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_every_preset_the_readme_names_exists_and_applications_start_from_imagenet():
    section = README.read_text().split("## Training on real data sets", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([a-z0-9_]+)`", section)) & {p.stem for p in CONFIG_DIR.glob("*.yaml")}
    expected = {f"efficientnet_b{i}" for i in range(5)} | {"xception", "resnet50", "cnn256", "dilated224"}
    assert expected | {"sbi", "smoke", "tiny"} <= named
    for name in sorted(p.stem for p in CONFIG_DIR.glob("*.yaml")):
        config = load_config(name)
        assert config.weights == ("imagenet" if config.backbone in PRETRAINED else None), name
    with pytest.raises(InvalidInputError, match="'tiny' has no pretrained weights"):
        load_config("smoke", ["weights=imagenet"])
    with pytest.raises(InvalidInputError, match="no such file"):
        load_config("efficientnet_b0", ["weights=/nowhere/efficientnetb0_notop.h5"])


@pytest.mark.needs_tf
def test_offline_one_line_says_how_to_proceed_and_nothing_is_written(
    prepared_crops, tmp_path, monkeypatch, capsys
):
    from keras.src.utils import file_utils

    from training.cli import train_main

    real_get_file = file_utils.get_file
    empty_cache = tmp_path / "keras-home"
    empty_cache.mkdir()

    def no_network(fname=None, origin=None, **options):  # the injected fault: nothing answers
        options.update(cache_dir=str(empty_cache), file_hash=None)
        return real_get_file(fname, "http://127.0.0.1:9/" + fname, **options)

    monkeypatch.setattr(file_utils, "get_file", no_network)
    out = tmp_path / "run"
    args = [
        "--config",
        "efficientnet_b0",
        "--set",
        "input_size=32",
        "--data",
        str(prepared_crops),
        "--out",
        str(out),
    ]
    assert train_main([*args, "--quiet"]) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "cannot download the ImageNet weights of efficientnet_b0" in err[0]
    assert "--set weights=null" in err[0] and "efficientnetb0_notop.h5" in err[0]
    assert not (out / "config.yaml").exists()  # the run never started: the same --out takes weights=null
    assert not list(empty_cache.rglob("*.h5"))


@pytest.mark.needs_tf
def test_a_local_weights_file_initialises_the_backbone(tmp_path):
    import keras

    donor = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(32, 32, 3))
    kernel = donor.get_layer("stem_conv")
    kernel.set_weights([np.full_like(w, 0.01) for w in kernel.get_weights()])
    path = tmp_path / "efficientnetb0_notop.weights.h5"
    donor.save_weights(path)
    model = build_model("efficientnet_b0", 32, weights=str(path))
    loaded = model.get_layer("efficientnetb0").get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(loaded, np.full_like(loaded, 0.01))
    with pytest.raises(InvalidInputError, match="has no pretrained weights"):
        build_model("tiny", 32, weights="imagenet")
