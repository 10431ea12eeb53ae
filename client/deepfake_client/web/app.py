"""The HTTP gateway: an upload page and ``POST /v1/scan`` in front of TF Serving (Starlette, ASGI).

```python
client = DetectorClient("grpc://tfserving:8500", label="stable")
app = create_app(client=client)          # uvicorn deepfake_client.web.app:... or deepfake-web
```

Routes: ``GET /`` (the page), ``/static/*``, ``/favicon.ico``, ``POST /v1/scan`` (multipart upload
-> verdict JSON of Contract 4; ``?thumbnails=1`` adds each person's representative face to its
track), ``GET /healthz`` (can uploads be stored, does the model server answer, which version is
``stable``), ``GET /metrics`` (Prometheus, see ``metrics``), ``GET /openapi.json``, and the on-device mode's
``GET /v1/device``, ``/v1/model.onnx``, ``/v1/face-detector.onnx`` (see ``device``).

One :class:`DetectorClient` serves every request: its gRPC channel multiplexes concurrent calls,
its REST transport keeps one connection per thread, and the default face detector (one ONNX Runtime
session) serves every thread (the others are per thread). Scans
(decode, detect, crop, predict) run on worker threads behind a capacity limiter. How many uploads
are received and scanned at once, per client too, and how long a slow client is waited for, are
the :class:`~deepfake_client.web.guard.Limits`; only a fully received upload queues for a scan, so
stalled clients cannot hold the scan slots. Every upload is a temporary file removed when its
request ends, however it ends. Errors are JSON ``{"error": {"type", "message", "status"}}`` with
the status the error class carries (Contract 5), plus 401, 408, 413, 415, 429 and 507 for uploads;
a refusal before the whole body arrived closes the connection.
"""

from __future__ import annotations

import logging
import os
import pathlib
import tempfile
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

from deepfake_client import contract
from deepfake_client.errors import DeepfakeError, NotFoundError
from deepfake_client.web.guard import Limits, Slots, read_body
from deepfake_client.web.upload import Upload, check_upload_dir, format_mb, receive_upload

log = logging.getLogger("deepfake_client.web")

STATIC_DIR = pathlib.Path(__file__).with_name("static")
DEFAULT_MAX_UPLOAD_BYTES = 200 * 1024 * 1024
HEALTH_TIMEOUT_S = 5.0
THUMBNAIL_SIZE = 128
RETRY_STATUSES = frozenset({429, 503, 507})


def error_response(error: DeepfakeError, *, status: int | None = None, close: bool = False) -> Any:
    """The JSON response for an error: its class name, its one-line message and its HTTP status.

    ``close`` asks the client to drop the connection (a refusal before its whole body arrived).
    """
    from starlette.responses import JSONResponse

    status = status or error.http_status
    headers = {"retry-after": "2"} if status in RETRY_STATUSES else {}
    if close:
        headers["connection"] = "close"
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
    ``thumbnails``, each track (person) gets ``face``, the index of its representative face (the
    one the detector was surest of), and ``thumbnail``, made from the very crop the model scored
    (``DetectorClient.prepare``), so the page never recomputes a crop.

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
    faces, scored = prepared.faces, out["faces"]
    if thumbnails and len(faces) == len(scored):  # a re-crop for another version changes the faces
        for track in out["tracks"]:
            members = [i for i, face in enumerate(scored) if face["track"] == track["track"]]
            best = max(members, key=lambda i: scored[i]["confidence"])
            if faces[best].frame_index == scored[best]["frame_index"]:
                track["face"] = best
                track["thumbnail"] = encode_thumbnail(faces[best].crop)
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


def create_app(
    *,
    client: Any,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
    limits: Limits | None = None,
    upload_dir: str | os.PathLike | None = None,
    token: bytes | None = None,
    close_client: bool = True,
    device_model: str | os.PathLike | None = None,
) -> Any:
    """Build the gateway's Starlette app around one :class:`~deepfake_client.client.DetectorClient`.

    Args:
        client: the detector client every request uses.
        max_upload_bytes: the largest request body accepted (413 beyond, checked while streaming).
        limits: uploads received and scanned at once, per client, and the timeouts (``Limits()``).
        upload_dir: where temporary files go (default: a ``deepfake-web`` folder in the system temp).
        token: the bearer token every ``/v1/*`` request must carry (None: no check).
        close_client: close the client when the app shuts down.
        device_model: an ONNX export for the page's on-device mode (see :mod:`deepfake_client.web.device`).
    """
    import anyio
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    from deepfake_client.web.device import device_routes, load_device_model
    from deepfake_client.web.metrics import GatewayMetrics
    from deepfake_client.web.middleware import GatewayMiddleware
    from deepfake_client.web.openapi import openapi_document

    if max_upload_bytes < 1:
        raise ValueError("max_upload_bytes >= 1 is required")
    limits = limits or Limits()
    directory = (
        pathlib.Path(upload_dir) if upload_dir else pathlib.Path(tempfile.gettempdir()) / "deepfake-web"
    )
    slots = Slots(limits)
    limiters: dict[str, anyio.CapacityLimiter] = {}
    document = openapi_document(max_upload_bytes=max_upload_bytes)
    metrics = GatewayMetrics(client.target.model)

    def scanning() -> int:
        return int(limiters["scan"].borrowed_tokens) if "scan" in limiters else 0

    metrics.watch_slots("receiving", lambda: slots.receiving, limits.max_receiving)
    metrics.watch_slots("waiting", lambda: slots.queued - scanning(), limits.max_waiting)
    metrics.watch_slots("scanning", scanning, limits.max_concurrency)

    async def off_loop(name: str, tokens: int, fn: Callable[[], Any]) -> Any:
        if name not in limiters:  # made inside the running event loop
            limiters[name] = anyio.CapacityLimiter(tokens)
        return await anyio.to_thread.run_sync(fn, limiter=limiters[name])

    async def index(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "index.html", headers={"cache-control": "no-cache"})

    async def favicon(request: Request) -> Response:
        return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")

    def refuse(err: DeepfakeError, *, close: bool) -> Response:
        metrics.observe_refusal(err)
        if err.http_status >= 500 and err.__cause__ is not None:
            log.warning("upload refused: %s (cause: %r)", err, err.__cause__)
        else:
            log.info("upload refused: %s", err, extra={"status": err.http_status})
        return error_response(err, close=close)

    async def scan(request: Request) -> Response:
        thumbnails = request.query_params.get("thumbnails", "").lower() in ("1", "true", "yes")
        try:
            ticket = slots.admit(request.client.host if request.client else "unknown")
        except DeepfakeError as err:
            return refuse(err, close=True)
        upload = None
        try:
            body = read_body(
                request.stream(), idle_timeout_s=limits.idle_timeout_s, body_timeout_s=limits.body_timeout_s
            )
            upload = await receive_upload(
                dict(request.headers), body, directory=directory, max_bytes=max_upload_bytes
            )
        except DeepfakeError as err:
            ticket.release()
            return refuse(err, close=True)
        except BaseException:
            ticket.release()  # whatever went wrong, the slot and the client's count come back
            raise
        try:
            metrics.upload_bytes.inc(upload.size)
            ticket.received()
            log.info(
                "scanning %s (%s, %d bytes)",
                upload.filename,
                upload.kind,
                upload.size,
                extra={"upload_bytes": upload.size, "kind": upload.kind},
            )
            start = time.perf_counter()
            verdict = await off_loop(
                "scan", limits.max_concurrency, partial(scan_upload, client, upload, thumbnails=thumbnails)
            )
            metrics.observe_scan(verdict, time.perf_counter() - start)
            log.info(
                "verdict %s",
                verdict["label"],
                extra={"label": verdict["label"], "model_version": verdict["model_version"]},
            )
            return JSONResponse(verdict)
        except DeepfakeError as err:
            return refuse(err, close=False)
        finally:
            ticket.release()
            upload.remove()

    async def healthz(request: Request) -> Response:
        checks: dict[str, str] = {}
        problem = await off_loop(
            "health", 2, partial(check_upload_dir, directory, need_bytes=min(max_upload_bytes, 1 << 20))
        )
        checks["upload_folder"] = problem or "ok"
        try:
            health = await off_loop("health", 2, partial(check_health, client))
            checks["model_server"] = "ok"
        except DeepfakeError as err:
            health = {"model": client.target.model}
            checks["model_server"] = f"model server: {err}"
        metrics.model_available.set(checks["model_server"] == "ok")
        health["checks"] = checks
        health["auth"] = "bearer" if token is not None else "none"
        health["uploads_in_flight"] = slots.receiving + slots.queued
        errors = [value for value in checks.values() if value != "ok"]
        if errors:
            health.update(status="unavailable", error="; ".join(errors))
            return JSONResponse(health, status_code=503)
        return JSONResponse(health)

    async def metrics_page(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        return JSONResponse(document)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(DeepfakeError(f"internal error: {type(exc).__name__}"), status=500)

    @asynccontextmanager
    async def lifespan(app: Any):
        problem = check_upload_dir(directory, need_bytes=max_upload_bytes * limits.files_at_once)
        if problem:  # keep serving: /healthz says so, and uploads get a plain 503 or 507
            log.warning("%s (room for %d uploads at the limit is wanted)", problem, limits.files_at_once)
        log.info(
            "limits: %s per upload, %d receiving (%d per client), %d waiting, %d scanning; "
            "idle timeout %g s, body deadline %g s",
            format_mb(max_upload_bytes),
            limits.max_receiving,
            limits.max_per_client,
            limits.max_waiting,
            limits.max_concurrency,
            limits.idle_timeout_s,
            limits.body_timeout_s,
        )
        yield
        if close_client:
            client.close()

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/favicon.ico", favicon, methods=["GET"]),
        Route("/v1/scan", scan, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *device_routes(load_device_model(device_model), client),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Exception: unexpected},
        middleware=[Middleware(GatewayMiddleware, metrics=metrics, token=token)],
    )
    app.state.metrics = metrics
    app.state.slots = slots
    return app
