"""gRPC and REST transports with one interface (:class:`Transport`); pick one by URL with ``make_transport``.

``grpc`` is imported only by the gRPC transport, so a REST-only user never pays for it.
"""

from __future__ import annotations

from deepfake_client.transport.base import (
    ModelMetadata,
    PredictResult,
    RetryPolicy,
    Signature,
    Target,
    TensorSpec,
    Transport,
    call_with_retries,
    make_transport,
)

__all__ = [
    "ModelMetadata",
    "PredictResult",
    "RetryPolicy",
    "Signature",
    "Target",
    "TensorSpec",
    "Transport",
    "call_with_retries",
    "make_transport",
]
