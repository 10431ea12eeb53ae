"""Fixtures of the training tests: a small generated dataset and its prepared crops."""

from __future__ import annotations

import pathlib

import pytest


@pytest.fixture(scope="session")
def synthetic_dataset(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A folder dataset (``<split>/real|fake``): 4 short H.264 video pairs and 1 PNG image pair."""
    from training.synthetic import generate_dataset

    return generate_dataset(tmp_path_factory.mktemp("synthetic"), 4, frames=6, images_per_class=1)


@pytest.fixture(scope="session")
def prepared_crops(synthetic_dataset: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """``synthetic_dataset`` prepared at 64x64, 4 frames per video, in this process."""
    from training.prepare import prepare_dataset

    out = tmp_path_factory.mktemp("crops") / "crops"
    prepare_dataset("folder", synthetic_dataset, out, size=64, frames=4, workers=1, progress=False)
    return out
