"""The REST front end: TF Serving's ``/v1/models/...`` API on Starlette.

Paths are matched with TF Serving's own regular expressions (http_rest_api_util.cc); anything
else under ``/v1/`` is ``Malformed request`` (400). Bodies may be gzip-compressed. Blocking work
runs in a thread pool so the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import functools
import gzip
import re
import zlib
from typing import Any
from urllib.parse import unquote

from deepfake_client._proto import tfs_pb2
from serving.devserver import json_tensor
from serving.devserver.runtime import DEFAULT_SIGNATURE
from serving.devserver.service import PredictionService, version_choice
from serving.devserver.status import DEADLINE_EXCEEDED, ServingError, invalid_argument

PREDICT_RE = re.compile(
    r"(?i)/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?:(classify|regress|predict)"
)
STATUS_RE = re.compile(
    r"(?i)/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?"
)
DEFAULT_MAX_BODY_BYTES = 1 << 30


def _model_spec(name: str, version: str | None, label: str | None) -> tfs_pb2.ModelSpec:
    spec = tfs_pb2.ModelSpec(name=unquote(name))
    if version:
        try:
            spec.version.value = int(version)
        except ValueError as err:  # more digits than an int64 holds
            raise invalid_argument(f"Failed to convert version: {version} to numeric.") from err
        if not -(2**63) <= int(version) < 2**63:
            raise invalid_argument(f"Failed to convert version: {version} to numeric.")
    if label:
        spec.version_label = unquote(label)
    return spec


def _json_status(message: Any) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(
        message, indent=1, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )


def render_metadata(response: tfs_pb2.GetModelMetadataResponse) -> str:
    """The metadata JSON exactly as http_rest_api_util.cc's ToJsonString assembles it."""
    sig_map = tfs_pb2.SignatureDefMap.FromString(response.metadata["signature_def"].value)
    return (
        '{\n"model_spec":' + _json_status(response.model_spec) + ",\n"
        '"metadata": {"signature_def": ' + _json_status(sig_map) + "}\n}\n"
    )


class RestHandler:
    """Turns (method, path, body) into (HTTP status, JSON text); usable without a web server."""

    def __init__(self, *, service: PredictionService, metrics_path: str | None = None) -> None:
        self.service = service
        self.metrics_path = metrics_path

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """Process one request the way HttpRestApiHandler::ProcessRequest does."""
        try:
            return 200, self._dispatch(method, path, body)
        except ServingError as err:
            return err.http_status, json_tensor.render_error(err.message)

    def _dispatch(self, method: str, path: str, body: bytes) -> str:
        if method == "POST":
            match = PREDICT_RE.fullmatch(path)
            if match:
                spec = _model_spec(match.group(1), match.group(2), match.group(3))
                if match.group(4).lower() != "predict":
                    raise ServingError(
                        "UNIMPLEMENTED", f"{match.group(4)} is not implemented by the dev server"
                    )
                return self._predict(spec, body)
        elif method == "GET":
            match = STATUS_RE.fullmatch(path)
            if match:
                if not match.group(1):
                    raise invalid_argument("Missing model name in request.")
                spec = _model_spec(match.group(1), match.group(2), match.group(3))
                if match.group(4):
                    request = tfs_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
                    request.model_spec.CopyFrom(spec)
                    return render_metadata(self.service.get_model_metadata(request, entrypoint="REST"))
                request = tfs_pb2.GetModelStatusRequest()
                request.model_spec.CopyFrom(spec)
                return _json_status(self.service.get_model_status(request))
        raise invalid_argument(f"Malformed request: {method} {path}")

    def _predict(self, spec: tfs_pb2.ModelSpec, body: bytes) -> str:
        manager = self.service.manager
        version, label = version_choice(spec)

        def input_infos(signature: str) -> dict[str, tfs_pb2.TensorInfo]:
            with manager.handle(spec.name, version, label) as servable:
                key = signature or DEFAULT_SIGNATURE
                if key not in servable.signature_defs:
                    raise invalid_argument(f'Serving signature name: "{key}" not found in signature def')
                return dict(servable.signature_defs[key].inputs)

        signature, inputs, fmt = json_tensor.parse_predict_request(body, input_infos)
        request = tfs_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = signature
        _, outputs = self.service.predict(request, entrypoint="REST", inputs=inputs)
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
    metrics_path: str | None = None,
    timeout_ms: int = 30000,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> Any:
    """The Starlette application serving TF Serving's REST API (and metrics, when enabled)."""
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, Response
    from starlette.routing import Route

    handler = RestHandler(service=service, metrics_path=metrics_path)

    def reply(status: int, text: str) -> Response:
        return Response(content=text, status_code=status, media_type="application/json")

    async def endpoint(request: Request) -> Response:
        path = request.url.path
        if metrics_path and path == metrics_path and request.method == "GET":
            return PlainTextResponse(service.metrics.render(), media_type="text/plain; version=0.0.4")
        if not path.lower().startswith("/v1/"):
            return PlainTextResponse("Not Found", status_code=404)
        declared = int(request.headers.get("content-length") or 0)
        if declared > max_body_bytes:
            return reply(
                413, json_tensor.render_error(f"Request body exceeds the limit of {max_body_bytes} bytes")
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > max_body_bytes:
                return reply(
                    413, json_tensor.render_error(f"Request body exceeds the limit of {max_body_bytes} bytes")
                )
            chunks.append(chunk)
        body = b"".join(chunks)
        try:
            body = _decompress(body, request.headers.get("content-encoding", ""), max_body_bytes)
        except ServingError as err:
            return reply(
                413 if err.code == "RESOURCE_EXHAUSTED" else err.http_status,
                json_tensor.render_error(err.message),
            )
        work = functools.partial(handler.handle, request.method, path, body)
        try:
            status, text = (
                await asyncio.wait_for(run_in_threadpool(work), timeout=timeout_ms / 1000)
                if timeout_ms > 0
                else await run_in_threadpool(work)
            )
        except asyncio.TimeoutError:
            err = ServingError(DEADLINE_EXCEEDED, "Deadline Exceeded")
            return reply(err.http_status, json_tensor.render_error(err.message))
        return reply(status, text)

    routes = [Route("/{path:path}", endpoint, methods=["GET", "POST"])]
    return Starlette(routes=routes)
