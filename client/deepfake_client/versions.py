"""What the client must know about one model version (Contract 2), read from the server.

The input size comes from the ``serving_default`` signature's shape in the metadata, the crop
margin and threshold from the ``model_info`` signature (and the input size from there too when
the shape does not say). A version never changes once published, so this is read once per version.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from deepfake_client import contract
from deepfake_client.errors import DeepfakeError
from deepfake_client.transport.base import ModelMetadata, Target

log = logging.getLogger("deepfake_client")


@dataclass(frozen=True)
class VersionInfo:
    """What the client must know about one model version, read from the server."""

    model: str
    version: int
    input_size: int
    crop_margin: float
    threshold: float
    encoded: bool = True  # has the ``encoded`` signature (JPEG/PNG crops)
    sequence_length: int = 0  # T of the ``sequence`` signature (the temporal model); 0: none
    sequence_threshold: float | None = None  # the threshold of the combined score, with a temporal model

    def crop_params(self) -> tuple[int, float]:
        return self.input_size, self.crop_margin


def read_version_info(
    pinned: Target, meta: ModelMetadata, ask_info: Callable[[], Mapping[str, np.ndarray]]
) -> VersionInfo:
    """The ``VersionInfo`` of version ``pinned`` from its metadata and, if it has one, its
    ``model_info`` signature (``ask_info()`` calls it and returns its outputs)."""
    signatures = meta.signatures
    size = None
    sig = signatures.get(contract.DEFAULT_SIGNATURE)
    if sig is not None and contract.IMAGES_INPUT in sig.inputs:
        shape = sig.inputs[contract.IMAGES_INPUT].shape
        if shape and len(shape) == 4 and shape[1] > 0:
            size = int(shape[1])
    margin, threshold = contract.DEFAULT_CROP_MARGIN, contract.DEFAULT_THRESHOLD
    length, sequence_threshold = 0, None
    if contract.INFO_SIGNATURE in signatures:
        out = ask_info()
        margin = round(float(np.asarray(out[contract.INFO_CROP_MARGIN]).reshape(-1)[0]), 6)  # float32 -> 0.3
        threshold = round(float(np.asarray(out[contract.INFO_THRESHOLD]).reshape(-1)[0]), 6)
        size = size or int(np.asarray(out[contract.INFO_INPUT_SIZE]).reshape(-1)[0])
        # a version with the temporal model also says T and its combined threshold
        if contract.INFO_SEQUENCE_LENGTH in out and contract.SEQUENCE_SIGNATURE in signatures:
            length = int(np.asarray(out[contract.INFO_SEQUENCE_LENGTH]).reshape(-1)[0])
            sequence_threshold = round(
                float(np.asarray(out[contract.INFO_SEQUENCE_THRESHOLD]).reshape(-1)[0]), 6
            )
    else:
        log.warning(
            "%s version %s has no %s signature: default margin and threshold",
            pinned.model,
            pinned.version,
            contract.INFO_SIGNATURE,
        )
    if not size:
        raise DeepfakeError(f"{pinned.model} version {pinned.version}: cannot tell its input size")
    return VersionInfo(
        pinned.model,
        int(pinned.version or 0),
        size,
        margin,
        threshold,
        encoded=contract.ENCODED_SIGNATURE in signatures,
        sequence_length=length,
        sequence_threshold=sequence_threshold,
    )
