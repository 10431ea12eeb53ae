"""The REST front end: TF Serving's ``/v1/models/...`` API on Starlette.

As http_server.cc and http_rest_api_handler.cc: every path under ``/v1/`` is TF Serving's (any
other method or path there is ``Malformed request``, 400, JSON); paths are matched with TF
Serving's own regular expressions; OPTIONS is a CORS preflight; ``--rest_api_enable_cors_support``
adds the CORS headers; every call is counted in the metrics (latency only when it succeeded, under
the path's lower-case method); ``--rest_api_timeout_in_ms`` bounds the model run, not the reading
and parsing of the body. Bodies may be gzip-compressed. Handlers run on ``--rest_api_num_threads``
threads so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import gzip
import re
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import unquote

from deepfake_client._proto import tfs_pb2
from serving.devserver import json_example, json_tensor
from serving.devserver.classify import ExampleApis
from serving.devserver.runtime import DEFAULT_SIGNATURE
from serving.devserver.service import PredictionService
from serving.devserver.status import FAILED_PRECONDITION, ServingError, invalid_argument

PREDICT_RE = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)"
)
STATUS_RE = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?"
)
DEFAULT_MAX_BODY_BYTES = 1 << 30
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET",
    "Access-Control-Allow-Headers": "Content-Type",
}


def _model_spec(name: str, version: str | None, label: str | None) -> tfs_pb2.ModelSpec:
    spec = tfs_pb2.ModelSpec(name=unquote(name))
    if version:
        if not -(2**63) <= int(version) < 2**63:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
        spec.version.value = int(version)
    if label:
        spec.version_label = unquote(label)
    return spec


def _json_status(message: Any) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(
        message, indent=1, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def render_metadata(response: tfs_pb2.GetModelMetadataResponse) -> str:
    """The metadata JSON as http_rest_api_util.cc's ToJsonString assembles it (with the
    signatures' ``defaults``, which TensorFlow's SignatureDef has)."""
    from tensorflow_serving.apis import get_model_metadata_pb2

    sig_map = get_model_metadata_pb2.SignatureDefMap.FromString(response.metadata["signature_def"].value)
    return (
        '{\n"model_spec":' + _json_status(response.model_spec) + ",\n"
        '"metadata": {"signature_def": ' + _json_status(sig_map) + "}\n}\n"
    )


class RestHandler:
    """Turns (method, path, body) into an answer; usable without a web server.

    Args:
        service: Predict, metadata and status.
        examples: Classify and Regress.
        timeout_ms: ``--rest_api_timeout_in_ms`` (0: none), applied to the model run.
    """

    def __init__(self, *, service: PredictionService, examples: ExampleApis, timeout_ms: int = 30000) -> None:
        self.service = service
        self.examples = examples
        self.timeout_s = timeout_ms / 1000 if timeout_ms > 0 else None

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """Process one request the way HttpRestApiHandler::ProcessRequest does; counts it."""
        start = time.perf_counter()
        match = {"POST": PREDICT_RE, "GET": STATUS_RE}.get(method)
        match = match.fullmatch(path) if match else None
        model_name = unquote(match.group(1) or "") if match else ""
        api = match.group(4) if match and method == "POST" else ""
        status = "OK"
        try:
            return 200, self._dispatch(method, path, body)
        except ServingError as err:
            status = err.code
            return err.http_status, json_tensor.render_error(err.message)
        finally:
            self.service.metrics.record_request(
                model_name=model_name,
                api=api,
                entrypoint="REST",
                status=status,
                seconds=time.perf_counter() - start,
            )

    def _dispatch(self, method: str, path: str, body: bytes) -> str:
        if method == "POST":
            match = PREDICT_RE.fullmatch(path)
            if match:
                spec = _model_spec(match.group(1), match.group(2), match.group(3))
                return self._post(match.group(4).lower(), spec, body)
        elif method == "GET":
            match = STATUS_RE.fullmatch(path)
            if match:
                if not match.group(1):
                    raise invalid_argument("Missing model name in request.")
                spec = _model_spec(match.group(1), match.group(2), match.group(3))
                if match.group(4):
                    request = tfs_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                    request.model_spec.CopyFrom(spec)
                    return render_metadata(self.service.get_model_metadata(request))
                request = tfs_pb2.GetModelStatusRequest()
                request.model_spec.CopyFrom(spec)
                return _json_status(self.service.get_model_status(request))
        raise invalid_argument(f"Malformed request: {method} {path}")

    def _post(self, api: str, spec: tfs_pb2.ModelSpec, body: bytes) -> str:
        if api == "predict":
            return self._predict(spec, body)
        from tensorflow_serving.apis import classification_pb2, regression_pb2

        request = (
            classification_pb2.ClassificationRequest
            if api == "classify"
            else regression_pb2.RegressionRequest
        )()
        request.model_spec.ParseFromString(spec.SerializeToString())
        json_example.fill_request_from_json(body, request)
        if api == "classify":
            return json_example.render_classification(
                self.examples.classify(request, timeout_s=self.timeout_s).result
            )
        return json_example.render_regression(self.examples.regress(request, timeout_s=self.timeout_s).result)

    def _predict(self, spec: tfs_pb2.ModelSpec, body: bytes) -> str:
        def input_infos(signature: str) -> dict[str, tfs_pb2.TensorInfo]:
            with self.service.hold(spec) as servable:
                key = signature or DEFAULT_SIGNATURE
                if key not in servable.signature_defs:
                    raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
                return dict(servable.signature_defs[key].inputs)

        signature, inputs, fmt = json_tensor.parse_predict_request(body, input_infos)
        request = tfs_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = signature
        _, outputs = self.service.predict(request, inputs=inputs, timeout_s=self.timeout_s)
        return json_tensor.render_predict_response(outputs, fmt)


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding.lower() not in ("gzip", "deflate"):
        return body
    try:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding.lower() == "gzip" else zlib.MAX_WBITS)
        data = decoder.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as err:
        raise invalid_argument(f"Failed to decompress the request body: {err}") from err
    if len(data) > limit:
        raise ServingError("RESOURCE_EXHAUSTED", f"Request body exceeds the limit of {limit} bytes")
    return data


def create_app(
    *,
    service: PredictionService,
    examples: ExampleApis,
    metrics_path: str | None = None,
    timeout_ms: int = 30000,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    num_threads: int = 16,
    cors: bool = False,
) -> Any:
    """The Starlette application serving TF Serving's REST API (and metrics, when enabled)."""
    import re as _re

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    handler = RestHandler(service=service, examples=examples, timeout_ms=timeout_ms)
    pool = ThreadPoolExecutor(max_workers=max(num_threads, 1), thread_name_prefix="rest")
    extra = CORS_HEADERS if cors else {}

    def reply(status: int, text: str, *, json_type: bool = True) -> Response:
        return Response(
            content=text,
            status_code=status,
            media_type="application/json" if json_type else None,
            headers=extra,
        )

    def too_big() -> Response:
        return reply(
            413, json_tensor.render_error(f"Request body exceeds the limit of {max_body_bytes} bytes")
        )

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        if metrics_path and path == metrics_path and request.method == "GET":
            return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")
        if not path.lower().startswith("/v1/"):
            return PlainTextResponse("Not Found", status_code=404)
        if request.method == "OPTIONS":  # CORS preflight (http_server.cc)
            if _re.search(r"https?://", request.headers.get("origin", "")):
                return reply(200, "", json_type=False)
            err = ServingError(FAILED_PRECONDITION, "Origin header is missing in CORS preflight")
            return reply(err.http_status, "", json_type=False)
        if int(request.headers.get("content-length") or 0) > max_body_bytes:
            return too_big()
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return too_big()
            chunks.append(chunk)
        body = b"".join(chunks)
        try:
            body = _decompress(body, request.headers.get("content-encoding", ""), max_body_bytes)
        except ServingError as err:
            status = 413 if err.code == "RESOURCE_EXHAUSTED" else err.http_status
            return reply(status, json_tensor.render_error(err.message))
        loop = asyncio.get_running_loop()
        status, text = await loop.run_in_executor(pool, handler.handle, request.method, path, body)
        return reply(status, text)

    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    return Starlette(routes=[Route("/{path:path}", endpoint, methods=methods)])
