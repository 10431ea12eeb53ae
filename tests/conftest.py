"""Shared fixtures: a real face image, a short H.264 video with a moving face, and markers."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from serving.devserver import launcher
from serving.devserver.launcher import DevServerProcess, free_port, stop_devserver

__all__ = ["DevServerProcess", "free_port", "start_devserver", "stop_devserver"]

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _docker_engine() -> str | None:
    if shutil.which("docker") is None:
        return "no docker client on this machine"
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=20)
    return None if probe.returncode == 0 else "docker client found but no Docker engine answers"


def _gpu() -> str | None:
    if shutil.which("nvidia-smi") is None or subprocess.run(["nvidia-smi"], capture_output=True).returncode:
        return "no NVIDIA GPU on this machine"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reasons = {}
    for item in items:
        for marker, probe in (("needs_docker", _docker_engine), ("needs_gpu", _gpu)):
            if marker in item.keywords:
                if marker not in reasons:
                    reasons[marker] = probe()
                if reasons[marker]:
                    item.add_marker(pytest.mark.skip(reason=f"{marker}: {reasons[marker]}"))


@pytest.fixture(scope="session")
def face_image() -> np.ndarray:
    """A real photograph with one frontal face (scikit-image's astronaut), RGB uint8 512x512."""
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def face_video(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A 2 s, 25 fps, 640x360 H.264 MP4 of a real face moving across a generated scene."""
    from training.synthetic import moving_face_frames, write_video

    path = tmp_path_factory.mktemp("video") / "moving_face.mp4"
    write_video(path, moving_face_frames(count=50), fps=25)
    return path


def tiny_keras_model(input_size: int = 64, seed: int = 0):
    """A small, untrained Keras model of the contract's form (uint8-range RGB in, one logit out)."""
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((input_size, input_size, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(1)(x)
    return keras.Model(inputs, outputs)


@pytest.fixture(scope="session")
def exported_version(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A complete version directory (``.../deepfake_detector/1``) made by the real export path."""
    from export.version import export_model

    repository = tmp_path_factory.mktemp("exported")
    result = export_model(tiny_keras_model(), repository, backbone="tiny-test", threshold=0.5)
    return pathlib.Path(result.path)


@pytest.fixture(autouse=True, scope="session")
def _quiet_tensorflow() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# --- dev server fixture ---
# Owned by the dev server (issue 6). A real `python -m serving.devserver` subprocess on free ports
# over a temporary repository holding the exported `deepfake_detector` version 1, labelled stable.


def start_devserver(
    repository: pathlib.Path,
    config_path: pathlib.Path,
    log_path: pathlib.Path,
    *extra: str,
    model: str = "deepfake_detector",
    timeout_s: float = 120.0,
) -> DevServerProcess:
    """A dev server over ``config_path``; labels at start-up only if ``extra`` allows them; no retries."""
    return launcher.start_devserver(
        config_path,
        log_path,
        "--max_num_load_retries=0",
        *extra,
        model=model,
        labels_at_startup=False,
        timeout_s=timeout_s,
        repository=repository,
    )


@pytest.fixture(scope="session")
def devserver(tmp_path_factory: pytest.TempPathFactory, exported_version: pathlib.Path):
    """A dev server serving ``deepfake_detector`` version 1 (label ``stable``) over gRPC and REST."""
    from export.modelconfig import initial_config, save_config

    root = tmp_path_factory.mktemp("devserver")
    repository = root / "models"
    base = repository / "deepfake_detector"
    shutil.copytree(exported_version, base / "1")
    config_path = repository / "models.config"
    save_config(config_path, initial_config(str(base), 1))
    server = start_devserver(
        repository, config_path, root / "devserver.log", "--allow_version_labels_for_unavailable_models=true"
    )
    yield server
    stop_devserver(server)


@pytest.fixture(scope="session")
def devserver_launcher():
    """``start_devserver`` and ``stop_devserver`` for tests that need their own server process."""
    return start_devserver, stop_devserver
