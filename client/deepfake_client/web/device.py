"""The upload page's "on this device" mode: what the browser needs to scan without uploading.

With ``deepfake-web --device-model DIR`` (an ONNX export: ``deepfake-export RUN --format tfjs`` or
``onnx``) the gateway serves, behind the same token as every ``/v1/*`` route:

- ``GET /v1/device``: whether the mode is available (and why not), the model's facts (input
  size, crop margin, threshold, version, sha256) and the client's sampling settings, so the page
  samples, crops and aggregates as :class:`~deepfake_client.client.DetectorClient` does;
- ``GET /v1/model.onnx``: the detector model; ``GET /v1/face-detector.onnx``: the bundled CenterFace.

The page runs both with onnxruntime-web, vendored into ``static/vendor/`` by
``scripts/vendor_web.py``. Only model files go to the browser: the video never leaves it.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import pathlib
from typing import Any

import orjson

from deepfake_client.errors import InvalidInputError
from deepfake_client.transport.local import find_model, read_facts

VENDOR_DIR = pathlib.Path(__file__).with_name("static") / "vendor"
VENDOR_MANIFEST = "manifest.json"
FACT_KEYS = (
    "model_name",
    "version",
    "input_size",
    "crop_margin",
    "threshold",
    "backbone",
    "format",
    "created",
)


def face_detector_file() -> pathlib.Path:
    return pathlib.Path(str(importlib.resources.files("deepfake_client") / "models" / "centerface.onnx"))


def load_device_model(path: str | os.PathLike | None) -> dict[str, Any] | None:
    """The ONNX export at ``path`` (its file and facts), checked now; None without one.

    Raises:
        NotFoundError: nothing at ``path``, or no ``model.json`` beside the file.
        InvalidInputError: not an ONNX export (a ``.tflite`` cannot run in the browser).
    """
    if path is None:
        return None
    model = find_model(path)
    if model.suffix != ".onnx":
        raise InvalidInputError(
            f"{model}: the on-device mode runs ONNX in the browser; export one with "
            "deepfake-export RUN --format tfjs --out DIR"
        )
    facts = read_facts(model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    return {"file": model, "facts": {k: facts.get(k) for k in FACT_KEYS} | {"sha256": digest}}


def vendor_problem() -> str | None:
    """Why the vendored onnxruntime-web cannot be served (None: it can)."""
    try:
        manifest = orjson.loads((VENDOR_DIR / VENDOR_MANIFEST).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return "onnxruntime-web is not vendored in this install (python scripts/vendor_web.py)"
    missing = [name for name in manifest.get("files", {}) if not (VENDOR_DIR / name).is_file()]
    return f"vendored files missing: {', '.join(missing)}" if missing else None


def device_info(device: dict[str, Any] | None, client: Any) -> dict[str, Any]:
    """The body of ``GET /v1/device``."""
    problem = vendor_problem()
    if device is None:
        problem = "this gateway has no model for the device (deepfake-web --device-model DIR)"
    runtime = None
    if vendor_problem() is None:
        manifest = orjson.loads((VENDOR_DIR / VENDOR_MANIFEST).read_bytes())
        runtime = {"name": manifest["package"], "version": manifest["version"]}
    return {
        "available": problem is None,
        "reason": problem,
        "model": device["facts"] if device else None,
        "runtime": runtime,
        "sampling": {
            "frames": client.frames,
            "per_second": client.per_second,
            "aggregation": client.aggregation,
            "threshold": client.threshold,
        },
    }


def device_routes(device: dict[str, Any] | None, client: Any) -> list[Any]:
    """The routes of the on-device mode (``/v1/device``, ``/v1/model.onnx``, ``/v1/face-detector.onnx``)."""
    from starlette.requests import Request
    from starlette.responses import FileResponse, JSONResponse, Response

    from deepfake_client.errors import NotFoundError
    from deepfake_client.web.app import error_response

    async def info(request: Request) -> Response:
        return JSONResponse(device_info(device, client))

    async def model(request: Request) -> Response:
        if device is None:
            return error_response(NotFoundError("this gateway has no model for the device (--device-model)"))
        return FileResponse(device["file"], media_type="application/octet-stream")

    async def detector(request: Request) -> Response:
        return FileResponse(face_detector_file(), media_type="application/octet-stream")

    from starlette.routing import Route

    return [
        Route("/v1/device", info, methods=["GET"]),
        Route("/v1/model.onnx", model, methods=["GET"]),
        Route("/v1/face-detector.onnx", detector, methods=["GET"]),
    ]
