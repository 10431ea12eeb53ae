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


def golden_sequences(images: np.ndarray, sequence_length: int) -> tuple[np.ndarray, np.ndarray]:
    """Golden sequences for the ``sequence`` signature: ``frames`` uint8 ``[4, T, S, S, 3]``, ``lengths``.

    Built from the golden crops: a steady track (one crop, brightening slowly), a flickering one (the
    crops in turn), and two short ones (4 crops, half of T) whose padding must not count.
    """
    length = int(sequence_length)
    base = images[0].astype(np.float32)
    steady = np.stack([np.clip(base * (0.9 + 0.2 * t / length), 0, 255) for t in range(length)])
    flicker = np.stack([images[t % len(images)] for t in range(length)])
    frames = np.stack(
        [steady.astype(np.uint8), flicker, np.roll(flicker, 1, axis=0), steady[::-1].astype(np.uint8)]
    )
    lengths = np.array([length, length, 4, max(4, length // 2)], dtype=np.int32)
    for i, n in enumerate(lengths):
        frames[i, n:] = 0  # padding as the client sends it
    return frames, lengths


def save_golden(
    path: str | pathlib.Path,
    images: np.ndarray,
    probabilities: np.ndarray,
    logits: np.ndarray,
    sequences: dict[str, np.ndarray] | None = None,
) -> None:
    """Write the golden batch; ``sequences`` (``sequence_frames``, ``sequence_lengths``,
    ``sequence_probability``, ``sequence_logit``) for a version with a temporal model."""
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        np.savez_compressed(
            handle, images=images, fake_probability=probabilities, logit=logits, **(sequences or {})
        )


def load_golden(path: str | pathlib.Path) -> dict[str, np.ndarray]:
    """The golden batch of a version directory (``images``, ``fake_probability``, ``logit``; and
    ``sequence_frames``, ``sequence_lengths``, ``sequence_probability``, ``sequence_logit`` for a
    version with a temporal model)."""
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
    temporal: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The content of model.json (``version`` is filled in by the publish step; ``temporal``: the
    run's temporal section, for a version with the ``sequence`` signature)."""
    import tensorflow as tf

    meta = {
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
    if temporal:
        length = int(temporal["sequence_length"])
        meta["signatures"][contract.SEQUENCE_SIGNATURE] = {
            "inputs": {
                contract.SEQUENCE_FRAMES_INPUT: f"uint8[-1,{length},{input_size},{input_size},3]",
                contract.SEQUENCE_LENGTHS_INPUT: "int32[-1]",
            }
        }
        meta["temporal"] = temporal
    return meta
