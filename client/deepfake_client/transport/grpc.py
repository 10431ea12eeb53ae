"""TF Serving's gRPC API without TensorFlow: the project's own messages, methods called by full path.

``tensorflow.serving.PredictionService/Predict`` and ``/GetModelMetadata`` and
``tensorflow.serving.ModelService/GetModelStatus`` are called through generic
``channel.unary_unary`` stubs with the messages of :mod:`deepfake_client._proto.tfs_pb2`, which are
wire-identical to TF Serving's. One channel per transport: HTTP/2 multiplexes every call on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from deepfake_client._proto import tfs_pb2
from deepfake_client.errors import DeadlineExceededError, ServerUnavailableError
from deepfake_client.tensors import DTYPE_NAMES, make_ndarray, make_tensor_proto
from deepfake_client.transport.base import (
    DEFAULT_TIMEOUT_S,
    Inputs,
    ModelMetadata,
    PredictResult,
    Signature,
    Target,
    TensorSpec,
    Transport,
    error_for,
    split_url,
)

PREDICT = "/tensorflow.serving.PredictionService/Predict"
GET_MODEL_METADATA = "/tensorflow.serving.PredictionService/GetModelMetadata"
GET_MODEL_STATUS = "/tensorflow.serving.ModelService/GetModelStatus"
RELOAD_CONFIG = "/tensorflow.serving.ModelService/HandleReloadConfigRequest"
MAX_MESSAGE_BYTES = 2**31 - 1  # TF Serving accepts up to 2 GB; grpc's client default is 4 MB
_STATES = {v.number: v.name for v in tfs_pb2.ModelVersionStatus.State.DESCRIPTOR.values}


def fill_model_spec(spec: tfs_pb2.ModelSpec, target: Target, signature: str = "") -> None:
    """Write ``target`` into a ``ModelSpec`` (name, then version or label, then signature)."""
    spec.name = target.model
    if target.version is not None:
        spec.version.value = target.version
    elif target.label is not None:
        spec.version_label = target.label
    if signature:
        spec.signature_name = signature


def make_predict_request(
    target: Target, signature: str, inputs: Inputs, output_filter: Sequence[str] = ()
) -> tfs_pb2.PredictRequest:
    """The ``PredictRequest`` for ``inputs`` (arrays or byte strings), byte-identical to TF Serving's."""
    request = tfs_pb2.PredictRequest()
    fill_model_spec(request.model_spec, target, signature)
    for name, values in inputs.items():
        make_tensor_proto(values, out=request.inputs[name])
    request.output_filter.extend(output_filter)
    return request


def _tensor_spec(info: tfs_pb2.TensorInfo) -> TensorSpec:
    shape = None if info.tensor_shape.unknown_rank else tuple(d.size for d in info.tensor_shape.dim)
    return TensorSpec(DTYPE_NAMES.get(info.dtype, str(info.dtype)), shape)


def parse_metadata(response: tfs_pb2.GetModelMetadataResponse) -> ModelMetadata:
    """Read the signatures out of a ``GetModelMetadataResponse``.

    The ``signature_def`` entry is an ``Any`` holding TF Serving's ``SignatureDefMap``; its type URL
    names TF Serving's package, so the payload is parsed directly rather than ``Any.Unpack``-ed.
    """
    sigmap = tfs_pb2.SignatureDefMap()
    if "signature_def" in response.metadata:
        sigmap.ParseFromString(response.metadata["signature_def"].value)
    signatures = {
        name: Signature(
            inputs={k: _tensor_spec(v) for k, v in sig.inputs.items()},
            outputs={k: _tensor_spec(v) for k, v in sig.outputs.items()},
        )
        for name, sig in sigmap.signature_def.items()
    }
    return ModelMetadata(response.model_spec.name, response.model_spec.version.value, signatures)


class GrpcTransport(Transport):
    """TF Serving over gRPC (``grpc://host:8500``, or ``grpcs://`` for TLS).

    Args:
        url: the server.
        root_certificates: PEM roots for TLS; the system's when None.
        headers: metadata sent with every call (e.g. ``authorization``); keys are lower-cased.
        target: the channel's gRPC target instead of ``url``'s ``host:port`` (e.g.
            ``dns:///tfserving-pods:8500``; see ``transport.balanced``).
        options: more channel options (e.g. a load-balancing service config).
    """

    def __init__(
        self,
        url: str,
        *,
        root_certificates: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        target: str | None = None,
        options: Sequence[tuple[str, object]] = (),
    ):
        import grpc

        scheme, host, port = split_url(url)
        self.url = url
        options = [
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 30_000),
            # a restarted server is noticed within a second by calls waiting for it (wait_s)
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 1000),
            *options,
        ]
        address = target or f"{host}:{port}"
        if scheme == "grpcs":
            credentials = grpc.ssl_channel_credentials(root_certificates=root_certificates)
            self._channel = grpc.secure_channel(address, credentials, options=options)
        else:
            self._channel = grpc.insecure_channel(address, options=options)
        self._metadata = tuple((k.lower(), v) for k, v in (headers or {}).items()) or None
        self._predict = self._channel.unary_unary(
            PREDICT,
            request_serializer=tfs_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfs_pb2.PredictResponse.FromString,
        )
        self._get_metadata = self._channel.unary_unary(
            GET_MODEL_METADATA,
            request_serializer=tfs_pb2.GetModelMetadataRequest.SerializeToString,
            response_deserializer=tfs_pb2.GetModelMetadataResponse.FromString,
        )
        self._get_status = self._channel.unary_unary(
            GET_MODEL_STATUS,
            request_serializer=tfs_pb2.GetModelStatusRequest.SerializeToString,
            response_deserializer=tfs_pb2.GetModelStatusResponse.FromString,
        )
        self._reload_config = self._channel.unary_unary(
            RELOAD_CONFIG,
            request_serializer=tfs_pb2.ReloadConfigRequest.SerializeToString,
            response_deserializer=tfs_pb2.ReloadConfigResponse.FromString,
        )

    def _call(self, stub, request, timeout_s: float, wait_s: float = 0.0):  # type: ignore[no-untyped-def]
        """One call; with ``wait_s`` it also waits that long for the channel to connect (wait-for-ready)."""
        import grpc

        waiting = wait_s > 0
        if waiting:
            # Wait for the channel on its own, so a server that never comes up costs the budget
            # (wait_s), not the budget plus a whole call's timeout.
            try:
                grpc.channel_ready_future(self._channel).result(timeout=wait_s)
            except grpc.FutureTimeoutError as err:
                raise ServerUnavailableError(
                    f"{self.url}: server unavailable: not reachable within {wait_s:.1f} s"
                ) from err
        try:
            return stub(
                request,
                timeout=timeout_s,
                metadata=self._metadata,
                wait_for_ready=True if waiting else None,
            )
        except grpc.RpcError as err:
            code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
            details = (err.details() if hasattr(err, "details") else None) or str(err)
            name = code.name if code is not None else "UNKNOWN"
            if name == "DEADLINE_EXCEEDED":
                raise DeadlineExceededError(f"{self.url}: no answer within {timeout_s:g} s") from err
            if name == "UNAVAILABLE":
                raise ServerUnavailableError(f"{self.url}: server unavailable: {details}") from err
            raise error_for(name, details) from err

    def predict(
        self,
        target: Target,
        signature: str,
        inputs: Inputs,
        *,
        output_filter: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_s: float = 0.0,
    ) -> PredictResult:
        request = make_predict_request(target, signature, inputs, output_filter)
        response = self._call(self._predict, request, timeout_s, wait_s)
        outputs = {name: make_ndarray(tensor) for name, tensor in response.outputs.items()}
        version = response.model_spec.version.value if response.model_spec.HasField("version") else None
        return PredictResult(outputs, version)

    def metadata(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> ModelMetadata:
        request = tfs_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        fill_model_spec(request.model_spec, target)
        return parse_metadata(self._call(self._get_metadata, request, timeout_s, wait_s))

    def status(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> dict[int, str]:
        request = tfs_pb2.GetModelStatusRequest()
        fill_model_spec(request.model_spec, Target(target.model, version=target.version))  # no label
        response = self._call(self._get_status, request, timeout_s, wait_s)
        return {s.version: _STATES.get(s.state, str(s.state)) for s in response.model_version_status}

    def reload_config(
        self, config: tfs_pb2.ModelServerConfig, *, timeout_s: float = DEFAULT_TIMEOUT_S
    ) -> None:
        """Replace the server's model config now (``ModelService/HandleReloadConfigRequest``).

        TF Serving does not write the config file: keep the file the source of truth and send the
        same content here. A refusal (for example a label on a version that is not AVAILABLE)
        raises the matching project error.
        """
        response = self._call(self._reload_config, tfs_pb2.ReloadConfigRequest(config=config), timeout_s)
        if response.status.error_code != tfs_pb2.OK:
            code = tfs_pb2.ErrorCode.Name(response.status.error_code)
            raise error_for(code, f"the server refused the model config: {response.status.error_message}")

    def close(self) -> None:
        self._channel.close()
