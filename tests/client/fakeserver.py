"""A small TF-Serving-shaped server (gRPC and REST) for injecting faults into the client's tests.

It speaks the same wire protocol as TF Serving (the project's wire-identical messages, the same
paths, JSON and status codes) but its "model" is arithmetic: ``fake_probability`` is the mean
pixel value / 255 of each crop. That makes answers predictable, and lets a test move labels,
change a version's input size mid-scan, drop calls with UNAVAILABLE or stall them. The real
end-to-end tests (tests/e2e) run against the project's dev server with a real exported model.
"""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
import time
from concurrent import futures
from dataclasses import dataclass, field

import numpy as np

from deepfake_client import contract
from deepfake_client._proto import tfs_pb2
from deepfake_client.tensors import make_ndarray, make_tensor_proto


@dataclass
class Version:
    input_size: int = 32
    crop_margin: float = 0.3
    threshold: float = 0.5


class ServerError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message


_HTTP = {"NOT_FOUND": 404, "INVALID_ARGUMENT": 400, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}


@dataclass
class Model:
    versions: dict[int, Version] = field(default_factory=lambda: {1: Version()})
    labels: dict[str, int] = field(default_factory=dict)
    faults: list[str] = field(default_factory=list)  # codes the next predict calls fail with
    delay_s: float = 0.0
    calls: list[tuple[str, int]] = field(default_factory=list)  # (signature, version) of each predict
    metadata_calls: int = 0
    after_predicts: dict[int, object] = field(default_factory=dict)  # call number -> callable(model)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def resolve(self, name: str, version: int | None, label: str | None) -> int:
        if name != contract.MODEL_NAME:
            raise ServerError("NOT_FOUND", f"Servable not found for request: Latest({name})")
        if label:
            if label not in self.labels:
                raise ServerError("INVALID_ARGUMENT", f"Unrecognized servable version label: {label}")
            return self.labels[label]
        if version is not None:
            if version not in self.versions:
                raise ServerError("NOT_FOUND", f"Servable not found for request: Specific({name}, {version})")
            return version
        return max(self.versions)

    def predict(self, number: int, signature: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import cv2

        with self.lock:
            self.calls.append((signature, number))
            hook = self.after_predicts.pop(len(self.calls), None)
            fault = self.faults.pop(0) if self.faults else None
        if self.delay_s:
            time.sleep(self.delay_s)
        if fault:
            raise ServerError(fault, f"injected {fault}")
        v = self.versions[number]
        if signature == contract.INFO_SIGNATURE:
            n = len(inputs[contract.INFO_INPUT])
            out = {
                contract.INFO_INPUT_SIZE: np.full(n, v.input_size, np.int32),
                contract.INFO_CROP_MARGIN: np.full(n, v.crop_margin, np.float32),
                contract.INFO_THRESHOLD: np.full(n, v.threshold, np.float32),
            }
        else:
            if signature == contract.ENCODED_SIGNATURE:
                images = np.stack(
                    [
                        cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
                        for b in inputs[contract.IMAGE_BYTES_INPUT]
                    ]
                )
            elif signature in ("", contract.DEFAULT_SIGNATURE):
                images = inputs[contract.IMAGES_INPUT]
            else:
                raise ServerError(
                    "INVALID_ARGUMENT", f'Serving signature name: "{signature}" not found in signature def'
                )
            if images.ndim != 4 or images.shape[1:] != (v.input_size, v.input_size, 3):
                raise ServerError(
                    "INVALID_ARGUMENT",
                    f"Incompatible shapes: {list(images.shape)} vs [-1,{v.input_size},{v.input_size},3]",
                )
            p = images.reshape(len(images), -1).mean(axis=1).astype(np.float32) / 255.0
            out = {contract.PROBABILITY_OUTPUT: p, contract.LOGIT_OUTPUT: np.log(p / (1 - p + 1e-6) + 1e-6)}
        if hook:
            hook(self)  # type: ignore[operator]
        return out

    def signature_def_map(self, number: int) -> tfs_pb2.SignatureDefMap:
        self.metadata_calls += 1
        s = self.versions[number].input_size
        sigmap = tfs_pb2.SignatureDefMap()
        for name, inputs, outputs in (
            (contract.DEFAULT_SIGNATURE, {contract.IMAGES_INPUT: (tfs_pb2.DT_UINT8, [-1, s, s, 3])}, "p"),
            (contract.ENCODED_SIGNATURE, {contract.IMAGE_BYTES_INPUT: (tfs_pb2.DT_STRING, [-1])}, "p"),
            (contract.INFO_SIGNATURE, {contract.INFO_INPUT: (tfs_pb2.DT_INT32, [-1])}, "i"),
        ):
            sig = sigmap.signature_def[name]
            sig.method_name = "tensorflow/serving/predict"
            outs = (
                {contract.PROBABILITY_OUTPUT: tfs_pb2.DT_FLOAT, contract.LOGIT_OUTPUT: tfs_pb2.DT_FLOAT}
                if outputs == "p"
                else {
                    contract.INFO_INPUT_SIZE: tfs_pb2.DT_INT32,
                    contract.INFO_CROP_MARGIN: tfs_pb2.DT_FLOAT,
                    contract.INFO_THRESHOLD: tfs_pb2.DT_FLOAT,
                }
            )
            for key, (dtype, shape) in inputs.items():
                info = sig.inputs[key]
                info.name, info.dtype = f"{name}_{key}:0", dtype
                for d in shape:
                    info.tensor_shape.dim.add().size = d
            for key, dtype in outs.items():
                info = sig.outputs[key]
                info.name, info.dtype = f"out_{key}:0", dtype
                info.tensor_shape.dim.add().size = -1
        return sigmap


class FakeServing:
    """Serves a :class:`Model` over gRPC and REST on free local ports until ``stop``."""

    def __init__(self, model: Model | None = None):
        import grpc

        self.model = model or Model()
        self.headers_seen: list[dict[str, str]] = []  # per request, gRPC metadata or HTTP headers
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        handler = grpc.method_handlers_generic_handler
        rpc = grpc.unary_unary_rpc_method_handler
        self._grpc.add_generic_rpc_handlers(
            (
                handler(
                    "tensorflow.serving.PredictionService",
                    {
                        "Predict": rpc(
                            self._g_predict,
                            tfs_pb2.PredictRequest.FromString,
                            tfs_pb2.PredictResponse.SerializeToString,
                        ),
                        "GetModelMetadata": rpc(
                            self._g_metadata,
                            tfs_pb2.GetModelMetadataRequest.FromString,
                            tfs_pb2.GetModelMetadataResponse.SerializeToString,
                        ),
                    },
                ),
            )
        )
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.grpc_url = f"grpc://127.0.0.1:{port}"
        self._http = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), _handler_for(self.model, self.headers_seen)
        )
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        self.rest_url = f"http://127.0.0.1:{self._http.server_address[1]}"

    def _abort(self, context, err: ServerError):  # type: ignore[no-untyped-def]
        import grpc

        context.abort(getattr(grpc.StatusCode, err.code), err.message)

    def _resolve(self, spec: tfs_pb2.ModelSpec) -> int:
        return self.model.resolve(
            spec.name, spec.version.value if spec.HasField("version") else None, spec.version_label or None
        )

    def _g_predict(self, request: tfs_pb2.PredictRequest, context) -> tfs_pb2.PredictResponse:  # type: ignore[no-untyped-def]
        self.headers_seen.append(dict(context.invocation_metadata()))
        spec = request.model_spec
        try:
            number = self._resolve(spec)
            out = self.model.predict(
                number, spec.signature_name, {k: make_ndarray(v) for k, v in request.inputs.items()}
            )
        except ServerError as err:
            self._abort(context, err)
        response = tfs_pb2.PredictResponse()
        response.model_spec.name, response.model_spec.signature_name = spec.name, spec.signature_name
        response.model_spec.version.value = number
        for key, value in out.items():
            if not request.output_filter or key in request.output_filter:
                make_tensor_proto(value, out=response.outputs[key])
        return response

    def _g_metadata(
        self, request: tfs_pb2.GetModelMetadataRequest, context
    ) -> tfs_pb2.GetModelMetadataResponse:  # type: ignore[no-untyped-def]
        spec = request.model_spec
        try:
            number = self._resolve(spec)
        except ServerError as err:
            self._abort(context, err)
        response = tfs_pb2.GetModelMetadataResponse()
        response.model_spec.name = spec.name
        response.model_spec.version.value = number
        any_ = response.metadata["signature_def"]
        any_.type_url = "type.googleapis.com/tensorflow.serving.SignatureDefMap"
        any_.value = self.model.signature_def_map(number).SerializeToString()
        return response

    def stop(self) -> None:
        self._grpc.stop(0)
        self._http.shutdown()
        self._http.server_close()


def _handler_for(
    model: Model, headers_seen: list[dict[str, str]]
) -> type[http.server.BaseHTTPRequestHandler]:
    route = re.compile(
        r"^/v1/models/(?P<name>[^/:]+)(?:/versions/(?P<v>\d+)|/labels/(?P<l>[^/:]+))?(?P<rest>/metadata|:predict)$"
    )

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def _send(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _dispatch(self, body: bytes | None) -> None:
            headers_seen.append({k.lower(): v for k, v in self.headers.items()})
            m = route.match(self.path)
            if not m:
                return self._send(404, {"error": f"Malformed request: {self.command} {self.path}"})
            try:
                number = model.resolve(m["name"], int(m["v"]) if m["v"] else None, m["l"])
                if m["rest"] == "/metadata":
                    return self._send(200, _metadata_json(model, m["name"], number))
                request = json.loads(body or b"{}")
                inputs = {}
                for key, values in request["inputs"].items():
                    if values and isinstance(values[0], dict):
                        inputs[key] = [base64.b64decode(v["b64"]) for v in values]
                    else:
                        dtype = np.int32 if key == contract.INFO_INPUT else np.uint8
                        inputs[key] = np.asarray(values, dtype=dtype)
                out = model.predict(number, request.get("signature_name", ""), inputs)
                self._send(200, {"outputs": {k: v.tolist() for k, v in out.items()}})
            except ServerError as err:
                self._send(_HTTP.get(err.code, 500), {"error": err.message})

        def do_GET(self) -> None:  # noqa: N802
            self._dispatch(None)

        def do_POST(self) -> None:  # noqa: N802
            self._dispatch(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    return Handler


def _metadata_json(model: Model, name: str, number: int) -> dict:
    from google.protobuf import json_format

    sigmap = json_format.MessageToDict(model.signature_def_map(number), preserving_proto_field_name=True)
    return {
        "model_spec": {"name": name, "signature_name": "", "version": str(number)},
        "metadata": {"signature_def": sigmap},
    }
