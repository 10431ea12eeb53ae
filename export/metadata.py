"""``assets.extra/model.json`` and the golden batch (``assets.extra/golden.npz``).

model.json describes a version for people and tools: version, creation time, backbone, input
size, crop margin, threshold, training data and metrics, the resolved training config. The golden
batch (inputs and the scores the exported model gave them) lets the rollout check, through the
server, that a loaded version answers exactly as it did at export.
"""

from __future__ import annotations

import datetime
import pathlib
from typing import Any

import numpy as np

from deepfake_client import contract

GOLDEN_FILE = "assets.extra/golden.npz"
GOLDEN_TOLERANCE = 1e-4  # absolute, on fake_probability; float32 on another CPU or a GPU stays well inside


def golden_images(input_size: int, count: int = 8, seed: int = 1234) -> np.ndarray:
    """A fixed batch of face crops (a real photograph, flipped, shifted, darkened) and noise, uint8."""
    import cv2

    from training.synthetic import real_face

    face = real_face()
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        if i % 4 == 3:
            images.append(rng.integers(0, 256, size=(input_size, input_size, 3), dtype=np.uint8))
            continue
        side = min(face.shape[:2])
        offset = int(rng.integers(0, face.shape[0] - side + 1))
        crop = face[offset : offset + side, :side]
        crop = crop[:, ::-1] if i % 2 else crop
        crop = np.clip(crop.astype(np.float32) * rng.uniform(0.7, 1.2), 0, 255).astype(np.uint8)
        images.append(
            cv2.resize(np.ascontiguousarray(crop), (input_size, input_size), interpolation=cv2.INTER_AREA)
        )
    return np.stack(images)


def save_golden(
    path: str | pathlib.Path, images: np.ndarray, probabilities: np.ndarray, logits: np.ndarray
) -> None:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez_compressed(handle, images=images, fake_probability=probabilities, logit=logits)


def load_golden(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The golden batch of a version directory (``images``, ``fake_probability``, ``logit``)."""
    with np.load(pathlib.Path(path)) as data:
        return {key: data[key] for key in data.files}


def model_metadata(
    *,
    backbone: str,
    input_size: int,
    crop_margin: float,
    threshold: float,
    dataset: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    config: dict[str, Any] | None = None,
    version: int | None = None,
    model_name: str = contract.MODEL_NAME,
) -> dict[str, Any]:
    """The content of model.json (``version`` is filled in by the publish step)."""
    import tensorflow as tf

    return {
        "model_name": model_name,
        "version": version,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "backbone": backbone,
        "input_size": int(input_size),
        "crop_margin": float(crop_margin),
        "threshold": float(threshold),
        "tensorflow_version": tf.__version__,
        "signatures": {
            contract.DEFAULT_SIGNATURE: {
                "inputs": {contract.IMAGES_INPUT: f"uint8[-1,{input_size},{input_size},3]"}
            },
            contract.ENCODED_SIGNATURE: {"inputs": {contract.IMAGE_BYTES_INPUT: "string[-1]"}},
            contract.INFO_SIGNATURE: {"inputs": {contract.INFO_INPUT: "int32[-1]"}},
        },
        "dataset": dataset or {},
        "metrics": metrics or {},
        "config": config or {},
    }
