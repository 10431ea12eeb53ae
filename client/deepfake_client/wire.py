"""How face crops go on the wire: the signature to call and its inputs, per encoding.

| encoding | signature | what is sent | pixels the model sees |
| --- | --- | --- | --- |
| ``uint8`` | ``serving_default`` | the uint8 tensor (gRPC: its raw bytes) | the crops |
| ``png`` | ``encoded`` | PNG, stored (zlib level 0, no row filter) | the crops (lossless) |
| ``jpeg`` | ``encoded`` | JPEG, quality 95 | JPEG's approximation (lossy) |

``auto`` picks per transport, by measurement (``bench client_rest``): over gRPC the uint8 tensor
is its raw bytes and nothing beats it; over REST a uint8 tensor must be JSON numbers (TF Serving
only takes ``{"b64": ...}`` for string tensors), 4x the bytes, slow to write and slower for the
server to parse, so REST sends lossless PNGs through the ``encoded`` signature: the same pixels
(``tf.io.decode_image`` of a stored PNG is exact, tested) in a quarter of the bytes. Stored PNGs,
because compressing them cost more CPU than it saved bytes on a local network; a version without
an ``encoded`` signature gets the tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from deepfake_client import contract
from deepfake_client.errors import InvalidInputError

ENCODINGS = ("auto", "uint8", "png", "jpeg")
JPEG_QUALITY = 95
PREFERRED = {"grpc": "uint8", "grpcs": "uint8", "http": "png", "https": "png"}  # auto, by URL scheme


def resolve_encoding(encoding: str, url: str, has_encoded: bool) -> str:
    """The encoding to use: ``auto`` by the transport's URL scheme (``uint8`` for anything but
    REST, e.g. an in-process transport), and ``uint8`` for a version without ``encoded``."""
    if encoding not in ENCODINGS:
        raise InvalidInputError(f"unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    if encoding == "auto":
        scheme = url.partition("://")[0].lower() if "://" in url else ""
        encoding = PREFERRED.get(scheme, "uint8")
        if not has_encoded:
            return "uint8"
    return encoding


def _png_params() -> list[int]:
    import cv2

    params = [cv2.IMWRITE_PNG_COMPRESSION, 0]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.10: no row filter, 5x faster to write
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_NONE]
    return params


def encode_crops(crops: np.ndarray, encoding: str) -> tuple[str, dict[str, Any]]:
    """``(signature, inputs)`` of a predict call scoring ``crops`` (RGB uint8 ``[N, S, S, 3]``)."""
    if encoding == "uint8":
        return contract.DEFAULT_SIGNATURE, {contract.IMAGES_INPUT: np.ascontiguousarray(crops)}
    import cv2

    if encoding == "png":
        ext, params = ".png", _png_params()
    elif encoding == "jpeg":
        ext, params = ".jpg", [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]
    else:
        raise InvalidInputError(f"unknown encoding {encoding!r} (known: {', '.join(ENCODINGS)})")
    encoded = [cv2.imencode(ext, cv2.cvtColor(c, cv2.COLOR_RGB2BGR), params)[1].tobytes() for c in crops]
    return contract.ENCODED_SIGNATURE, {contract.IMAGE_BYTES_INPUT: encoded}
