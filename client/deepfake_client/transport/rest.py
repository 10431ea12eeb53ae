"""TF Serving's REST API (``/v1/models/...``) over keep-alive HTTP connections, standard library only.

A REST predict response does not say which version answered, so a label (or "latest") is
resolved first with ``GET /v1/models/M/labels/L/metadata`` (its ``model_spec.version``), the call
goes to ``/v1/models/M/versions/N:predict``, and on 404 the label is resolved again once.
Resolutions are cached for ``resolve_ttl_s``. Inputs go as the columnar ``{"inputs": ...}``
form: uint8 integers for numeric arrays, ``{"b64": ...}`` for byte strings.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from deepfake_client.errors import (
    DeadlineExceededError,
    DeepfakeError,
    NotFoundError,
    ServerUnavailableError,
)
from deepfake_client.transport.base import (
    DEFAULT_RESOLVE_TTL_S,
    DEFAULT_TIMEOUT_S,
    HTTP_CODES,
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


def model_path(target: Target) -> str:
    """``/v1/models/M``, ``/v1/models/M/versions/N`` or ``/v1/models/M/labels/L``."""
    path = f"/v1/models/{target.model}"
    if target.version is not None:
        return f"{path}/versions/{target.version}"
    if target.label is not None:
        return f"{path}/labels/{target.label}"
    return path


def encode_inputs(signature: str, inputs: Inputs) -> bytes:
    """The JSON body of a predict call: ``{"signature_name": ..., "inputs": {name: values}}``."""
    columns: dict[str, Any] = {}
    for name, values in inputs.items():
        if isinstance(values, np.ndarray) and values.dtype.kind not in "SUO":
            columns[name] = np.ascontiguousarray(values)
        else:
            columns[name] = [{"b64": base64.b64encode(bytes(v)).decode("ascii")} for v in values]
    return orjson.dumps({"signature_name": signature, "inputs": columns}, option=orjson.OPT_SERIALIZE_NUMPY)


def decode_outputs(body: Any) -> dict[str, np.ndarray]:
    """Outputs of a columnar predict response (``{"outputs": {...}}`` or, with one output, a bare list)."""
    if not isinstance(body, Mapping) or "outputs" not in body:
        raise DeepfakeError(f"the server's predict response has no outputs: {str(body)[:200]}")
    outputs = body["outputs"]
    if not isinstance(outputs, dict):
        outputs = {"output": outputs}
    return {name: np.asarray(values) for name, values in outputs.items()}


def _tensor_spec(info: Mapping[str, Any]) -> TensorSpec:
    shape_info = info.get("tensor_shape", {})
    if shape_info.get("unknown_rank"):
        shape = None
    else:
        shape = tuple(int(d.get("size", -1)) for d in shape_info.get("dim", []))
    return TensorSpec(str(info.get("dtype", "DT_INVALID")), shape)


def parse_metadata(body: Mapping[str, Any]) -> ModelMetadata:
    """Read a ``GET .../metadata`` answer (the JSON form of ``GetModelMetadataResponse``)."""
    try:
        spec = body["model_spec"]
        sigmap = body.get("metadata", {}).get("signature_def", {}).get("signature_def", {})
        signatures = {
            name: Signature(
                inputs={k: _tensor_spec(v) for k, v in sig.get("inputs", {}).items()},
                outputs={k: _tensor_spec(v) for k, v in sig.get("outputs", {}).items()},
            )
            for name, sig in sigmap.items()
        }
        return ModelMetadata(str(spec["name"]), int(spec["version"]), signatures)
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise DeepfakeError(f"unexpected metadata answer from the server: {str(body)[:200]}") from err


class RestTransport(Transport):
    """TF Serving over REST (``http://host:8501`` or ``https://``).

    Args:
        url: the server.
        root_certificates: PEM roots for TLS; the system's when None.
        headers: sent with every request (e.g. ``Authorization``).
        resolve_ttl_s: how long a label's (or "latest"'s) version number is trusted without asking.
    """

    def __init__(
        self,
        url: str,
        *,
        root_certificates: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        resolve_ttl_s: float = DEFAULT_RESOLVE_TTL_S,
    ):
        scheme, self._host, self._port = split_url(url)
        self.url = url
        self._tls: ssl.SSLContext | None = None
        if scheme == "https":
            self._tls = ssl.create_default_context(
                cadata=root_certificates.decode() if root_certificates else None
            )
        self._headers = {"Content-Type": "application/json", **(headers or {})}
        self._local = threading.local()  # one keep-alive connection per thread
        self._connections: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._resolved: dict[Target, tuple[int, float]] = {}
        self.resolve_ttl_s = resolve_ttl_s

    def _connection(self, timeout_s: float) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=timeout_s, context=self._tls
                )
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        conn.timeout = timeout_s
        if conn.sock is None:
            conn.connect()
            # http.client writes the headers and the body separately: with Nagle's algorithm the
            # body could wait for the server's delayed ACK (up to 40 ms a request).
            conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn.sock.settimeout(timeout_s)
        return conn

    def _drop_connection(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def request(self, method: str, path: str, body: bytes | None, timeout_s: float) -> Any:
        """Send one request; return the parsed JSON answer or raise the project's error."""
        try:
            conn = self._connection(timeout_s)
            conn.request(method, path, body=body, headers=self._headers)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError as err:
            self._drop_connection()
            raise DeadlineExceededError(f"{self.url}: no answer within {timeout_s:g} s") from err
        except (OSError, http.client.HTTPException) as err:
            self._drop_connection()
            raise ServerUnavailableError(f"{self.url}: {type(err).__name__}: {err}") from err
        if response.will_close:
            self._drop_connection()
        try:
            answer = orjson.loads(data) if data else {}
        except orjson.JSONDecodeError as err:
            if response.status >= 400:
                raise self._error(response.status, data.decode("utf-8", "replace")[:200]) from err
            raise DeepfakeError(f"{self.url}{path}: the answer is not JSON") from err
        if response.status >= 400:
            message = answer.get("error", str(answer)) if isinstance(answer, dict) else str(answer)
            raise self._error(response.status, str(message))
        return answer

    def _error(self, status: int, message: str) -> DeepfakeError:
        code = HTTP_CODES.get(status, "UNAVAILABLE" if status >= 500 else "UNKNOWN")
        return error_for(code, f"HTTP {status}: {message}")

    def resolve(self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, fresh: bool = False) -> int:
        """The version number a label (or "latest") stands for now, cached for ``resolve_ttl_s``."""
        if target.version is not None:
            return target.version
        cached = self._resolved.get(target)
        if cached and not fresh and time.monotonic() - cached[1] < self.resolve_ttl_s:
            return cached[0]
        return self.metadata(target, timeout_s=timeout_s).version

    def predict(
        self,
        target: Target,
        signature: str,
        inputs: Inputs,
        *,
        output_filter: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_s: float = 0.0,  # REST cannot wait for a server: the caller polls (RetryPolicy)
    ) -> PredictResult:
        body = encode_inputs(signature, inputs)
        version = self.resolve(target, timeout_s=timeout_s)
        try:
            answer = self.request("POST", model_path(target.pinned(version)) + ":predict", body, timeout_s)
        except NotFoundError:
            if target.version is not None:
                raise
            version = self.resolve(target, timeout_s=timeout_s, fresh=True)  # the label moved on
            answer = self.request("POST", model_path(target.pinned(version)) + ":predict", body, timeout_s)
        outputs = decode_outputs(answer)
        if output_filter:
            outputs = {k: v for k, v in outputs.items() if k in output_filter}
        return PredictResult(outputs, version)

    def metadata(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> ModelMetadata:
        meta = parse_metadata(self.request("GET", model_path(target) + "/metadata", None, timeout_s))
        if target.version is None:  # every answer about a label (or "latest") also resolves it
            self._resolved[target] = (meta.version, time.monotonic())
        return meta

    def status(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> dict[int, str]:
        path = model_path(Target(target.model, version=target.version))  # labels are ignored
        answer = self.request("GET", path, None, timeout_s)
        try:
            return {int(s["version"]): str(s["state"]) for s in answer.get("model_version_status", [])}
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise DeepfakeError(f"unexpected status answer: {str(answer)[:200]}") from err

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
