"""The calls both front ends share: Predict, GetModelMetadata, GetModelStatus, ReloadConfig
(Classify, Regress and MultiInference are in ``classify.py``, on the same run path).

They take and return the project's TF-free protos (the same bytes as TF Serving's messages) and
raise :class:`ServingError` with TF Serving's codes and texts. gRPC and REST are thin wrappers.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from deepfake_client._proto import tfs_pb2
from deepfake_client.errors import InvalidInputError
from deepfake_client.tensors import make_ndarray
from serving.devserver.manager import ModelManager
from serving.devserver.metrics import Metrics
from serving.devserver.runtime import Servable
from serving.devserver.status import DEADLINE_EXCEEDED, ServingError, invalid_argument

SIGNATURE_DEF_FIELD = "signature_def"
SIGNATURE_DEF_MAP_TYPE_URL = "type.googleapis.com/tensorflow.serving.SignatureDefMap"

# numpy dtype kind/size -> the typed TensorProto field TF's AsProtoField writes.
_FIELDS = {
    np.dtype(np.float32): "float_val",
    np.dtype(np.float64): "double_val",
    np.dtype(np.int32): "int_val",
    np.dtype(np.int16): "int_val",
    np.dtype(np.int8): "int_val",
    np.dtype(np.uint8): "int_val",
    np.dtype(np.uint16): "int_val",
    np.dtype(np.int64): "int64_val",
    np.dtype(np.bool_): "bool_val",
    np.dtype(np.uint32): "uint32_val",
    np.dtype(np.uint64): "uint64_val",
}


def version_choice(spec: tfs_pb2.ModelSpec) -> tuple[int | None, str | None]:
    """The (version, label) a ModelSpec asks for."""
    choice = spec.WhichOneof("version_choice")
    if choice == "version":
        return spec.version.value, None
    if choice == "version_label":
        return None, spec.version_label
    return None, None


def encode_tensor(array: np.ndarray, out: tfs_pb2.TensorProto) -> None:
    """Fill ``out`` the way TensorFlow's ``Tensor::AsProtoField`` does (typed ``*_val`` fields)."""
    from deepfake_client.tensors import dtype_enum

    array = np.asarray(array)
    out.dtype = dtype_enum(array.dtype)
    for size in array.shape:
        out.tensor_shape.dim.add().size = size
    flat = array.reshape(-1)
    if array.dtype == object or array.dtype.kind in "SU":
        out.string_val.extend(v if isinstance(v, bytes) else str(v).encode() for v in flat)
    elif array.dtype == np.float16:
        out.half_val.extend(flat.view(np.uint16).tolist())
    else:
        getattr(out, _FIELDS[array.dtype]).extend(flat.tolist())


def decode_inputs(request: tfs_pb2.PredictRequest) -> dict[str, np.ndarray]:
    """The request's input tensors as numpy arrays (INVALID_ARGUMENT when one does not decode)."""
    inputs = {}
    for alias, proto in request.inputs.items():
        try:
            inputs[alias] = make_ndarray(proto)
        except InvalidInputError as err:
            raise invalid_argument(str(err)) from err
    return inputs


class PredictionService:
    """Predict, metadata, status and config reloads over one :class:`ModelManager`.

    Request counts and latencies are the front ends' (they know the entry point); the service
    records what happens inside: the model's run time.

    Args:
        manager: the versions to serve.
        metrics: where the run times go.
        batcher: optional request batcher (``--enable_batching``); ``None`` runs each request alone.
        tensor_content: ``--enable_serialization_as_tensor_content``: gRPC Predict outputs are
            written as ``tensor_content`` bytes instead of typed ``*_val`` fields.
    """

    def __init__(
        self,
        *,
        manager: ModelManager,
        metrics: Metrics,
        batcher: object | None = None,
        tensor_content: bool = False,
    ) -> None:
        self.manager = manager
        self.metrics = metrics
        self.batcher = batcher
        self.tensor_content = tensor_content
        self._runs = ThreadPoolExecutor(thread_name_prefix="run")  # only runs that have a deadline

    def close(self) -> None:
        """Stop the deadline runner (runs in progress finish on their own)."""
        self._runs.shutdown(wait=False, cancel_futures=True)

    @contextlib.contextmanager
    def hold(self, spec: tfs_pb2.ModelSpec) -> Iterator[Servable]:
        """ServerCore::GetServableHandle: the version a ModelSpec names, held for the block."""
        version, label = version_choice(spec)
        with self.manager.handle(spec.name, version, label) as servable:
            yield servable

    def run(
        self,
        servable: Servable,
        signature: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
        *,
        api: str,
        model_name: str,
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Session::Run: one signature on numpy inputs (batched when batching is on).

        ``timeout_s`` bounds the run alone, as RunOptions.timeout_in_ms does in TF Serving
        (parsing and encoding are not part of it); the run is not interrupted, its answer is
        dropped. ``api`` names the run in ``runtime_latency`` ("" records nothing).

        Raises:
            ServingError: the run's error, or DEADLINE_EXCEEDED when it took longer than allowed.
        """

        def call() -> dict[str, np.ndarray]:
            if self.batcher is not None:
                return self.batcher.predict(  # type: ignore[attr-defined]
                    servable=servable, signature_name=signature, inputs=inputs, output_filter=output_filter
                )
            return servable.predict(signature_name=signature, inputs=inputs, output_filter=output_filter)

        start = time.perf_counter()
        if timeout_s is None:
            outputs = call()
        else:
            future = self._runs.submit(call)
            try:
                outputs = future.result(max(timeout_s, 0.0))
            except FutureTimeout as err:
                raise ServingError(DEADLINE_EXCEEDED, "Deadline Exceeded") from err
        if api:
            self.metrics.observe_runtime(model_name=model_name, api=api, seconds=time.perf_counter() - start)
        return outputs

    def predict(
        self,
        request: tfs_pb2.PredictRequest,
        *,
        inputs: Mapping[str, np.ndarray] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[tfs_pb2.ModelSpec, dict[str, np.ndarray]]:
        """TensorflowPredictor::Predict; returns the resolved model spec and the output arrays.

        ``inputs`` may carry already-decoded arrays (REST), else they come from ``request.inputs``.
        """
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        with self.hold(spec) as servable:
            arrays = dict(inputs) if inputs is not None else decode_inputs(request)
            signature, _ = servable.signature(spec.signature_name)
            outputs = self.run(
                servable,
                signature,
                arrays,
                tuple(request.output_filter),
                api="Predict",
                model_name=spec.name,
                timeout_s=timeout_s,
            )
            resolved = tfs_pb2.ModelSpec(name=spec.name, signature_name=signature)
            resolved.version.value = servable.version
            return resolved, outputs

    def predict_proto(
        self, request: tfs_pb2.PredictRequest, *, timeout_s: float | None = None
    ) -> tfs_pb2.PredictResponse:
        """Predict with a PredictResponse (gRPC)."""
        spec, outputs = self.predict(request, timeout_s=timeout_s)
        response = tfs_pb2.PredictResponse()
        response.model_spec.CopyFrom(spec)
        for alias, array in outputs.items():
            if self.tensor_content and array.dtype != object and array.dtype.kind not in "SU":
                from deepfake_client.tensors import make_tensor_proto

                make_tensor_proto(array, out=response.outputs[alias])
            else:
                encode_tensor(array, response.outputs[alias])
        return response

    def get_model_metadata(
        self, request: tfs_pb2.GetModelMetadataRequest
    ) -> tfs_pb2.GetModelMetadataResponse:
        """GetModelMetadataImpl: the signature defs of the resolved version, packed in an Any."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        if not request.metadata_field:
            raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
        for name in request.metadata_field:
            if name != SIGNATURE_DEF_FIELD:
                raise invalid_argument(f"Metadata field {name} is not supported")
        with self.hold(request.model_spec) as servable:
            response = tfs_pb2.GetModelMetadataResponse()
            response.model_spec.name = servable.name
            response.model_spec.version.value = servable.version
            sig_map = tfs_pb2.SignatureDefMap()
            for key, sig in servable.signature_defs.items():
                sig_map.signature_def[key].CopyFrom(sig)
            packed = response.metadata[SIGNATURE_DEF_FIELD]
            packed.type_url = SIGNATURE_DEF_MAP_TYPE_URL
            packed.value = sig_map.SerializeToString(deterministic=True)
            return response

    def get_model_status(self, request: tfs_pb2.GetModelStatusRequest) -> tfs_pb2.GetModelStatusResponse:
        """GetModelStatusImpl: every version (or the one asked for); like TF Serving, it ignores labels."""
        if not request.HasField("model_spec"):
            raise invalid_argument("Missing ModelSpec")
        spec = request.model_spec
        version, _ = version_choice(spec)
        response = tfs_pb2.GetModelStatusResponse()
        response.model_version_status.extend(self.manager.model_status(spec.name, version))
        return response

    def reload_config(self, request: tfs_pb2.ReloadConfigRequest) -> tfs_pb2.ReloadConfigResponse:
        """HandleReloadConfigRequest: apply the config; a refusal is the call's error status.

        Raises:
            ServingError: the config is refused (the previous one stays in force).
        """
        if request.config.WhichOneof("config") != "model_config_list":
            raise invalid_argument(
                "ServerModelConfig type not supported by HandleReloadConfigRequest. "
                "Only ModelConfigList is currently supported"
            )
        self.manager.reload_config(request.config)
        response = tfs_pb2.ReloadConfigResponse()
        response.status.error_code = tfs_pb2.OK
        return response
