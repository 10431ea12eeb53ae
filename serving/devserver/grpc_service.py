"""The gRPC front end: TF Serving's PredictionService and ModelService, plus grpc.health.v1.

Handlers are registered generically under TF Serving's service names, with the project's TF-free
messages as (de)serializers, so the wire is TF Serving's: the official ``tensorflow-serving-api``
stubs and the project's client both talk to it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent import futures
from typing import Any

from deepfake_client._proto import tfs_pb2
from serving.devserver.service import PredictionService
from serving.devserver.status import ServingError

log = logging.getLogger("serving.devserver")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving accepts messages up to INT_MAX


def _unary(grpc: Any, fn: Callable[[Any], Any], request_cls: Any, response_cls: Any) -> Any:
    def handler(request: Any, context: Any) -> Any:
        try:
            return fn(request)
        except ServingError as err:
            context.abort(getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN), err.message)
        except Exception as err:  # noqa: BLE001 - never let a bug kill the call without a status
            log.exception("internal error in a gRPC call")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )


def _unimplemented(grpc: Any, method: str) -> Any:
    def handler(request: bytes, context: Any) -> Any:
        context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented by the dev server")

    return grpc.unary_unary_rpc_method_handler(handler, request_deserializer=bytes, response_serializer=bytes)


def create_grpc_server(
    *, service: PredictionService, address: str, max_workers: int = 16, ssl: Any = None
) -> tuple[Any, Any, int]:
    """Build and start a gRPC server on ``address`` ("host:port"; port 0 picks one).

    ``ssl`` is an ``SSLConfig`` (``--ssl_config_file``): TLS with its key and certificate, client
    certificates checked against ``custom_ca`` when ``client_verify``, as TF Serving does.

    Returns:
        ``(server, health_servicer, port)``.

    Raises:
        OSError: the address cannot be bound.
    """
    import grpc
    from grpc_health.v1 import health, health_pb2, health_pb2_grpc

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ],
    )
    prediction = {
        "Predict": _unary(grpc, service.predict_proto, tfs_pb2.PredictRequest, tfs_pb2.PredictResponse),
        "GetModelMetadata": _unary(
            grpc,
            service.get_model_metadata,
            tfs_pb2.GetModelMetadataRequest,
            tfs_pb2.GetModelMetadataResponse,
        ),
        "Classify": _unimplemented(grpc, "Classify"),
        "Regress": _unimplemented(grpc, "Regress"),
        "MultiInference": _unimplemented(grpc, "MultiInference"),
    }
    model = {
        "GetModelStatus": _unary(
            grpc, service.get_model_status, tfs_pb2.GetModelStatusRequest, tfs_pb2.GetModelStatusResponse
        ),
        "HandleReloadConfigRequest": _unary(
            grpc, service.reload_config, tfs_pb2.ReloadConfigRequest, tfs_pb2.ReloadConfigResponse
        ),
    }
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(PREDICTION_SERVICE, prediction),
            grpc.method_handlers_generic_handler(MODEL_SERVICE, model),
        )
    )
    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if ssl is not None:
        credentials = grpc.ssl_server_credentials(
            [(ssl.server_key.encode(), ssl.server_cert.encode())],
            root_certificates=ssl.custom_ca.encode() or None,
            require_client_auth=ssl.client_verify,
        )
        port = server.add_secure_port(address, credentials)
    else:
        port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind the gRPC server to {address}")
    server.start()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    for name in (PREDICTION_SERVICE, MODEL_SERVICE):
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, port
