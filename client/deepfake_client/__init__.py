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

_LAZY = {
    "DetectorClient": "deepfake_client.client",
    "VersionInfo": "deepfake_client.client",
    "AsyncDetectorClient": "deepfake_client.aio",
    "Verdict": "deepfake_client.verdict",
    "Target": "deepfake_client.transport.base",
    "make_transport": "deepfake_client.transport.base",
}


def __getattr__(name: str) -> object:
    """Import the client classes on first use, so ``import deepfake_client`` stays light."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'deepfake_client' has no attribute {name!r}")


__all__ = [
    "AsyncDetectorClient",
    "DetectorClient",
    "Target",
    "Verdict",
    "VersionInfo",
    "make_transport",
    "DeadlineExceededError",
    "DeepfakeError",
    "InvalidInputError",
    "NotFoundError",
    "ServerUnavailableError",
    "__version__",
]
