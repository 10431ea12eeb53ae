"""The ASGI middleware around every request: request id, bearer token, access log and request metrics.

Pure ASGI (no body buffering, so uploads still stream): it sets the request id for the logs,
echoes it in ``X-Request-ID``, answers 401 to a ``/v1/*`` request without the token before the
route sees a byte of its body, and after the response logs one access line and counts the request
under its route (a fixed set of names, so a scanner's random paths cannot blow up the metrics).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from deepfake_client.web.auth import bearer_matches
from deepfake_client.web.logs import REQUEST_ID, REQUEST_ID_HEADER, request_id_from
from deepfake_client.web.metrics import GatewayMetrics

log = logging.getLogger("deepfake_client.web.access")

ROUTES = (
    "/",
    "/v1/scan",
    "/v1/device",
    "/v1/model.onnx",
    "/v1/face-detector.onnx",
    "/healthz",
    "/metrics",
    "/openapi.json",
    "/favicon.ico",
)


def route_of(path: str) -> str:
    """The metrics name of a path: a known route, ``/static``, or ``other``."""
    if path in ROUTES:
        return path
    return "/static" if path.startswith("/static/") else "other"


def unauthorized_body() -> dict[str, Any]:
    return {
        "error": {
            "type": "UnauthorizedError",
            "message": "this gateway needs an access token: send 'Authorization: Bearer <token>'",
            "status": 401,
        }
    }


class GatewayMiddleware:
    """Wraps the app: request id, the ``/v1/*`` token check, the access log and the request metrics."""

    def __init__(self, app: Any, *, metrics: GatewayMetrics, token: bytes | None) -> None:
        self.app = app
        self.metrics = metrics
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        from starlette.datastructures import Headers, MutableHeaders
        from starlette.responses import JSONResponse

        headers = Headers(scope=scope)
        request_id = request_id_from(headers.get(REQUEST_ID_HEADER))
        context_token = REQUEST_ID.set(request_id)
        path = scope["path"]
        start = time.perf_counter()
        status = 500
        started = False

        async def send_with_id(message: dict) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
                MutableHeaders(scope=message).append(REQUEST_ID_HEADER, request_id)
            await send(message)

        try:
            if (
                self.token is not None
                and path.startswith("/v1/")
                and not bearer_matches(headers.get("authorization"), self.token)
            ):
                refusal = JSONResponse(
                    unauthorized_body(),
                    status_code=401,
                    headers={"www-authenticate": 'Bearer realm="deepfake-web"', "connection": "close"},
                )
                await refusal(scope, receive, send_with_id)
                return
            try:
                await self.app(scope, receive, send_with_id)
            except Exception as exc:
                # Starlette answers an unhandled error from outside every middleware (its
                # ServerErrorMiddleware), so that 500 would go out without the request id the
                # operator needs to find the traceback: answer it here, through send_with_id.
                if started:
                    raise
                from deepfake_client.errors import DeepfakeError
                from deepfake_client.web.app import error_response

                logging.getLogger("deepfake_client.web").exception(
                    "unexpected error on %s %s", scope["method"], path, exc_info=exc
                )
                response = error_response(DeepfakeError(f"internal error: {type(exc).__name__}"), status=500)
                await response(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - start
            route = route_of(path)
            self.metrics.observe_request(route, status, seconds)
            client = scope.get("client")
            log.info(
                "%s %s %d",
                scope["method"],
                path,
                status,
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 1),
                    "client": client[0] if client else None,
                },
            )
            REQUEST_ID.reset(context_token)
