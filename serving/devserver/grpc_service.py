"""The gRPC front end: TF Serving's PredictionService and ModelService (and, with
``--enable_grpc_healthcheck_service``, grpc.health.v1 under TF Serving's service names).

Handlers are registered generically under TF Serving's service names with the project's TF-free
messages as (de)serializers (the official ``tensorflow_serving.apis`` ones for Classify, Regress
and MultiInference), so the wire is TF Serving's. As in prediction_service_impl.cc, Predict,
Classify and Regress are counted in the metrics (latency only when they succeed) and the client's
deadline bounds the model run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent import futures
from typing import Any

from deepfake_client._proto import tfs_pb2
from serving.devserver.classify import ExampleApis
from serving.devserver.metrics import Metrics
from serving.devserver.service import PredictionService
from serving.devserver.status import ServingError

log = logging.getLogger("serving.devserver")

PREDICTION_SERVICE = "tensorflow.serving.PredictionService"
MODEL_SERVICE = "tensorflow.serving.ModelService"
HEALTH_NAMES = ("ModelService", "PredictionService")  # server.cc's SetServingStatus names
MAX_MESSAGE_BYTES = 2**31 - 1  # builder.SetMaxMessageSize(INT32_MAX)


def _unary(
    grpc: Any,
    fn: Callable[..., Any],
    request_cls: Any,
    response_cls: Any,
    *,
    api: str = "",
    metrics: Metrics | None = None,
) -> Any:
    def handler(request: Any, context: Any) -> Any:
        start, status = time.perf_counter(), "OK"
        try:
            if api:
                return fn(request, timeout_s=context.time_remaining())
            return fn(request)
        except ServingError as err:
            status = err.code
            context.abort(getattr(grpc.StatusCode, err.code, grpc.StatusCode.UNKNOWN), err.message)
        except Exception as err:  # noqa: BLE001 - never let a bug kill the call without a status
            status = "INTERNAL"
            log.exception("internal error in a gRPC call")
            context.abort(grpc.StatusCode.INTERNAL, f"{type(err).__name__}: {err}")
        finally:
            if api and metrics is not None:
                metrics.record_request(
                    model_name=request.model_spec.name,
                    api=api,
                    entrypoint="GRPC",
                    status=status,
                    seconds=time.perf_counter() - start,
                )

    return grpc.unary_unary_rpc_method_handler(
        handler,
        request_deserializer=request_cls.FromString,
        response_serializer=response_cls.SerializeToString,
    )


def create_grpc_server(
    *,
    service: PredictionService,
    examples: ExampleApis,
    metrics: Metrics,
    addresses: Sequence[str],
    max_workers: int = 16,
    ssl: Any = None,
    channel_arguments: Sequence[tuple[str, Any]] = (),
    health: bool = False,
) -> tuple[Any, Any, list[int]]:
    """Build and start a gRPC server on ``addresses`` ("host:port", port 0 picks one; "unix:path").

    ``ssl`` is an ``SSLConfig`` (``--ssl_config_file``): TLS with its key and certificate, client
    certificates checked against ``custom_ca`` when ``client_verify``, as TF Serving does.
    ``channel_arguments`` are ``--grpc_channel_arguments`` (they may override the message sizes).

    Returns:
        ``(server, health_servicer or None, TCP ports bound)``.

    Raises:
        OSError: an address cannot be bound.
    """
    import grpc
    from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

    options = dict(
        [
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
        ]
    )
    options.update(channel_arguments)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="grpc"),
        options=list(options.items()),
    )
    prediction = {
        "Predict": _unary(
            grpc,
            service.predict_proto,
            tfs_pb2.PredictRequest,
            tfs_pb2.PredictResponse,
            api="Predict",
            metrics=metrics,
        ),
        "GetModelMetadata": _unary(
            grpc,
            service.get_model_metadata,
            tfs_pb2.GetModelMetadataRequest,
            tfs_pb2.GetModelMetadataResponse,
        ),
        "Classify": _unary(
            grpc,
            examples.classify,
            classification_pb2.ClassificationRequest,
            classification_pb2.ClassificationResponse,
            api="Classify",
            metrics=metrics,
        ),
        "Regress": _unary(
            grpc,
            examples.regress,
            regression_pb2.RegressionRequest,
            regression_pb2.RegressionResponse,
            api="Regress",
            metrics=metrics,
        ),
        "MultiInference": _unary(
            grpc,
            examples.multi_inference,
            inference_pb2.MultiInferenceRequest,
            inference_pb2.MultiInferenceResponse,
        ),
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
    health_servicer = None
    if health:
        from grpc_health.v1 import health as grpc_health
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        health_servicer = grpc_health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    ports = []
    for address in addresses:
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
        if not address.startswith("unix:"):
            ports.append(port)
    server.start()
    if health_servicer is not None:
        health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        for name in HEALTH_NAMES:
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return server, health_servicer, ports
