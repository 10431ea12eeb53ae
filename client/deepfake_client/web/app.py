"""The HTTP gateway: an upload page and ``POST /v1/scan`` in front of TF Serving (Starlette, ASGI).

```python
client = DetectorClient("grpc://tfserving:8500", label="stable")
app = create_app(client=client)          # uvicorn deepfake_client.web.app:... or deepfake-web
```

Routes: ``GET /`` (the page), ``/static/*``, ``POST /v1/scan`` (multipart upload -> verdict JSON of
Contract 4; ``?thumbnails=1`` adds a small JPEG of each face crop), ``GET /healthz`` (does the model
server answer, which version is ``stable``), ``GET /openapi.json``.

One :class:`DetectorClient` serves every request: its gRPC channel multiplexes concurrent calls,
its REST transport keeps one connection per thread, and the default face detector (one ONNX Runtime
session) serves every thread (the others are per thread). Scans
(decode, detect, crop, predict) run on worker threads behind a capacity limiter, ``max_concurrency``
at once; at most ``max_waiting`` more uploads may be in flight, beyond that the gateway answers 503
at once instead of queueing without bound. Every upload is a temporary file removed when its
request ends, however it ends. Errors are JSON ``{"error": {"type", "message", "status"}}`` with
the status the error class carries (Contract 5), plus 413 and 415 for uploads.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
from collections.abc import Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from deepfake_client import contract
from deepfake_client.errors import DeepfakeError, NotFoundError, ServerUnavailableError
from deepfake_client.web.upload import Upload, receive_upload

log = logging.getLogger("deepfake_client.web")

STATIC_DIR = pathlib.Path(__file__).with_name("static")
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
DEFAULT_MAX_CONCURRENCY = 2
DEFAULT_MAX_WAITING = 16
HEALTH_TIMEOUT_S = 5.0
THUMBNAIL_SIZE = 96
MAX_THUMBNAILS = 64


def error_response(error: DeepfakeError, *, status: int | None = None) -> Any:
    """The JSON response for an error: its class name, its one-line message and its HTTP status."""
    from starlette.responses import JSONResponse

    status = status or error.http_status
    headers = {"retry-after": "2"} if status == 503 else None
    body = {"error": {"type": type(error).__name__, "message": str(error), "status": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def encode_thumbnail(crop: Any, size: int = THUMBNAIL_SIZE) -> str:
    """A face crop (RGB uint8) as a small JPEG ``data:`` URL."""
    import base64

    import cv2

    small = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA) if crop.shape[0] != size else crop
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])
    if not ok:
        raise DeepfakeError("could not encode a thumbnail")
    return "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")


def scan_upload(client: Any, upload: Upload, *, thumbnails: bool = False) -> dict[str, Any]:
    """Scan one uploaded file with ``client`` (blocking: call it on a worker thread); the verdict dict.

    The verdict names the file as the client uploaded it, not the temporary path. With
    ``thumbnails``, each face (up to ``MAX_THUMBNAILS``) carries a ``thumbnail`` made from the very
    crop the model scored (``DetectorClient.prepare``), so the page never recomputes a crop.

    Raises:
        DeepfakeError: whatever the client raises, with the temporary path replaced by the file name.
    """
    try:
        prepared = client.prepare(upload.path)
        verdict = client.score(prepared)
    except DeepfakeError as err:
        message = str(err).replace(str(upload.path), upload.filename)
        raise type(err)(message) from err
    out = verdict.to_dict()
    out["source"] = upload.filename
    out["size_bytes"] = upload.size
    faces = prepared.faces
    if thumbnails and len(faces) == len(out["faces"]):  # a re-crop for another version changes the faces
        for face, scored in zip(faces[:MAX_THUMBNAILS], out["faces"], strict=False):
            if face.frame_index == scored["frame_index"]:
                scored["thumbnail"] = encode_thumbnail(face.crop)
    return out


def check_health(client: Any) -> dict[str, Any]:
    """Ask the model server for the model's version states and the ``stable`` label (blocking).

    Raises:
        ServerUnavailableError: the model server does not answer.
        NotFoundError: it answers but does not know the model.
    """
    from deepfake_client.transport.base import Target

    model = client.target.model
    states = client.transport.status(Target(model), timeout_s=HEALTH_TIMEOUT_S)
    try:
        stable = client.transport.metadata(
            Target(model, label=contract.STABLE_LABEL), timeout_s=HEALTH_TIMEOUT_S
        )
        stable_version = stable.version
    except NotFoundError:
        stable_version = None
    return {
        "status": "ok",
        "model": model,
        "stable_version": stable_version,
        "versions": {str(v): s for v, s in sorted(states.items())},
        "target": client.target.describe(),
    }


class _Gate:
    """Counts uploads in flight; refuses one more than ``limit``."""

    def __init__(self, limit: int):
        self.limit = limit
        self.active = 0

    def enter(self) -> None:
        if self.active >= self.limit:
            raise ServerUnavailableError(
                f"the gateway is busy ({self.active} uploads in flight); try again shortly"
            )
        self.active += 1

    def leave(self) -> None:
        self.active -= 1


def create_app(
    *,
    client: Any,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    max_waiting: int = DEFAULT_MAX_WAITING,
    upload_dir: str | os.PathLike | None = None,
    close_client: bool = True,
) -> Any:
    """Build the gateway's Starlette app around one :class:`~deepfake_client.client.DetectorClient`.

    Args:
        client: the detector client every request uses.
        max_upload_bytes: the largest request body accepted (413 beyond, checked while streaming).
        max_concurrency: scans running at once (each on a worker thread).
        max_waiting: further uploads in flight (receiving or waiting for a worker); beyond, 503.
        upload_dir: where temporary files go (default: a ``deepfake-web`` folder in the system temp).
        close_client: close the client when the app shuts down.
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from deepfake_client.web.openapi import openapi_document

    if max_concurrency < 1 or max_waiting < 0 or max_upload_bytes < 1:
        raise ValueError("max_concurrency >= 1, max_waiting >= 0 and max_upload_bytes >= 1 are required")
    directory = (
        pathlib.Path(upload_dir) if upload_dir else pathlib.Path(tempfile.gettempdir()) / "deepfake-web"
    )
    gate = _Gate(max_concurrency + max_waiting)
    limiters: dict[str, anyio.CapacityLimiter] = {}
    document = openapi_document(max_upload_bytes=max_upload_bytes)

    async def off_loop(name: str, tokens: int, fn: Callable[[], Any]) -> Any:
        if name not in limiters:  # made inside the running event loop
            limiters[name] = anyio.CapacityLimiter(tokens)
        return await anyio.to_thread.run_sync(fn, limiter=limiters[name])

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    async def scan(request: Request) -> Response:
        thumbnails = request.query_params.get("thumbnails", "").lower() in ("1", "true", "yes")
        try:
            gate.enter()
        except DeepfakeError as err:
            return error_response(err)
        upload = None
        try:
            upload = await receive_upload(
                dict(request.headers), request.stream(), directory=directory, max_bytes=max_upload_bytes
            )
            log.info("scanning %s (%s, %d bytes)", upload.filename, upload.kind, upload.size)
            verdict = await off_loop(
                "scan", max_concurrency, partial(scan_upload, client, upload, thumbnails=thumbnails)
            )
            return JSONResponse(verdict)
        except DeepfakeError as err:
            log.info("scan refused: %s (%s)", err, err.http_status)
            return error_response(err)
        finally:
            gate.leave()
            if upload is not None:
                upload.remove()

    async def healthz(request: Request) -> Response:
        try:
            health = await off_loop("health", 2, partial(check_health, client))
        except DeepfakeError as err:
            body = {"status": "unavailable", "model": client.target.model, "error": str(err)}
            return JSONResponse(body, status_code=503)
        health["uploads_in_flight"] = gate.active
        return JSONResponse(health)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(DeepfakeError(f"internal error: {type(exc).__name__}"), status=500)

    @asynccontextmanager
    async def lifespan(app: Any):
        directory.mkdir(parents=True, exist_ok=True)
        yield
        if close_client:
            client.close()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/v1/scan", scan, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(routes=routes, lifespan=lifespan, exception_handlers={Exception: unexpected})
