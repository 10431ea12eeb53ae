"""deepfake-client: a thin, TensorFlow-free client for the deepfake detector on TF Serving.

Heavy modules (OpenCV, gRPC) are imported by the functions that need them, so
``import deepfake_client`` stays fast and small.
"""

from __future__ import annotations

from deepfake_client.errors import (
    DeadlineExceededError,
    DeepfakeError,
    InvalidInputError,
    NotFoundError,
    ServerUnavailableError,
)

__version__ = "0.1.0"

__all__ = [
    "DeadlineExceededError",
    "DeepfakeError",
    "InvalidInputError",
    "NotFoundError",
    "ServerUnavailableError",
    "__version__",
]
