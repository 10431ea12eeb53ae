"""The four calls both front ends share: Predict, GetModelMetadata, GetModelStatus, ReloadConfig.

They take and return the project's TF-free protos (the same bytes as TF Serving's messages) and
raise :class:`ServingError` with TF Serving's codes and texts. gRPC and REST are thin wrappers.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from deepfake_client._proto import tfs_pb2
from deepfake_client.errors import InvalidInputError
from deepfake_client.tensors import make_ndarray
from serving.devserver.manager import ModelManager
from serving.devserver.metrics import Metrics
from serving.devserver.runtime import DEFAULT_SIGNATURE
from serving.devserver.status import ServingError, invalid_argument

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

    Args:
        manager: the versions to serve.
        metrics: where request counts and latencies go.
        batcher: optional request batcher (``--enable_batching``); ``None`` runs each request alone.
    """

    def __init__(self, *, manager: ModelManager, metrics: Metrics, batcher: object | None = None) -> None:
        self.manager = manager
        self.metrics = metrics
        self.batcher = batcher

    def predict(
        self,
        request: tfs_pb2.PredictRequest,
        *,
        entrypoint: str = "GRPC",
        inputs: Mapping[str, np.ndarray] | None = None,
    ) -> tuple[tfs_pb2.ModelSpec, dict[str, np.ndarray]]:
        """Run a PredictRequest; returns the resolved model spec and the output arrays.

        ``inputs`` may carry already-decoded arrays (REST), else they come from ``request.inputs``.
        """
        start = time.perf_counter()
        spec = request.model_spec
        status = "OK"
        try:
            version, label = version_choice(spec)
            with self.manager.handle(spec.name, version, label) as servable:
                arrays = dict(inputs) if inputs is not None else decode_inputs(request)
                signature = spec.signature_name or DEFAULT_SIGNATURE
                servable.signature(signature)
                if self.batcher is not None:
                    outputs = self.batcher.predict(
                        servable=servable,
                        signature_name=signature,
                        inputs=arrays,
                        output_filter=tuple(request.output_filter),
                    )
                else:
                    outputs = servable.predict(
                        signature_name=signature, inputs=arrays, output_filter=tuple(request.output_filter)
                    )
                resolved = tfs_pb2.ModelSpec(name=spec.name, signature_name=signature)
                resolved.version.value = servable.version
                return resolved, outputs
        except ServingError as err:
            status = err.code
            raise
        finally:
            self.metrics.record_request(
                model_name=spec.name,
                api="Predict",
                entrypoint=entrypoint,
                status=status,
                seconds=time.perf_counter() - start,
            )

    def predict_proto(self, request: tfs_pb2.PredictRequest) -> tfs_pb2.PredictResponse:
        """Predict with a PredictResponse (gRPC)."""
        spec, outputs = self.predict(request, entrypoint="GRPC")
        response = tfs_pb2.PredictResponse()
        response.model_spec.CopyFrom(spec)
        for alias, array in outputs.items():
            encode_tensor(array, response.outputs[alias])
        return response

    def get_model_metadata(
        self, request: tfs_pb2.GetModelMetadataRequest, *, entrypoint: str = "GRPC"
    ) -> tfs_pb2.GetModelMetadataResponse:
        """GetModelMetadataImpl: the signature defs of the resolved version, packed in an Any."""
        start = time.perf_counter()
        status = "OK"
        try:
            if not request.metadata_field:
                raise invalid_argument("GetModelMetadataRequest must specify at least one metadata_field")
            for name in request.metadata_field:
                if name != SIGNATURE_DEF_FIELD:
                    raise invalid_argument(f"Metadata field {name} is not supported")
            if not request.model_spec.name:
                raise invalid_argument("Missing model_spec")
            version, label = version_choice(request.model_spec)
            with self.manager.handle(request.model_spec.name, version, label) as servable:
                response = tfs_pb2.GetModelMetadataResponse()
                response.model_spec.name = request.model_spec.name
                response.model_spec.version.value = servable.version
                sig_map = tfs_pb2.SignatureDefMap()
                for key, sig in servable.signature_defs.items():
                    sig_map.signature_def[key].CopyFrom(sig)
                packed = response.metadata[SIGNATURE_DEF_FIELD]
                packed.type_url = SIGNATURE_DEF_MAP_TYPE_URL
                packed.value = sig_map.SerializeToString(deterministic=True)
                return response
        except ServingError as err:
            status = err.code
            raise
        finally:
            self.metrics.record_request(
                model_name=request.model_spec.name,
                api="GetModelMetadata",
                entrypoint=entrypoint,
                status=status,
                seconds=time.perf_counter() - start,
            )

    def get_model_status(self, request: tfs_pb2.GetModelStatusRequest) -> tfs_pb2.GetModelStatusResponse:
        """GetModelStatusImpl: every version (or the one asked for); like TF Serving, it ignores labels."""
        spec = request.model_spec
        if not spec.name:
            raise invalid_argument("Missing model name in request.")
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
