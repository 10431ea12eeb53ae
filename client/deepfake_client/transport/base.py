"""The one interface of the gRPC and REST transports, and what they share.

A transport speaks TF Serving's API and nothing more: predict, model metadata, model status. It
maps every server or network failure onto the project's errors (Contract 5). Retries, caching and
the scan pipeline live in :mod:`deepfake_client.client`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar
from urllib.parse import urlsplit

import numpy as np

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import (
    DeadlineExceededError,
    DeepfakeError,
    InvalidInputError,
    NotFoundError,
    ServerUnavailableError,
)

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRY_FOR_S = 30.0  # how long a client rides out an unreachable server (a restart)
# How long a label's (or "latest"'s) version number is trusted without asking again. gRPC answers
# name their version, but a REST answer does not: a REST client sends to the version it resolved,
# so after a label moves it may be answered by the version the label left for up to this long.
DEFAULT_RESOLVE_TTL_S = 1.0
UNKNOWN_LABEL_TEXT = "Unrecognized servable version label"

T = TypeVar("T")
log = logging.getLogger("deepfake_client")


@dataclass(frozen=True)
class Target:
    """Which model, and which version of it: a number, a label, or (neither) the latest."""

    model: str = MODEL_NAME
    version: int | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        if self.version is not None and self.label is not None:
            raise InvalidInputError("target either a version or a label, not both")

    def describe(self) -> str:
        if self.version is not None:
            return f"version:{self.version}"
        if self.label is not None:
            return f"label:{self.label}"
        return "latest"

    def pinned(self, version: int) -> Target:
        return Target(self.model, version=version)


@dataclass(frozen=True)
class TensorSpec:
    """A signature input or output as the metadata describes it (``-1`` for an unknown dimension)."""

    dtype: str  # TensorFlow's name, e.g. "DT_UINT8"
    shape: tuple[int, ...] | None  # None: unknown rank


@dataclass(frozen=True)
class Signature:
    inputs: Mapping[str, TensorSpec]
    outputs: Mapping[str, TensorSpec]


@dataclass(frozen=True)
class ModelMetadata:
    """What ``GetModelMetadata`` says: the version that the target resolved to and its signatures."""

    model: str
    version: int
    signatures: Mapping[str, Signature]


@dataclass(frozen=True)
class PredictResult:
    outputs: dict[str, np.ndarray]
    version: int | None  # the version that answered


Inputs = Mapping[str, "np.ndarray | Sequence[bytes]"]


class Transport(ABC):
    """TF Serving's API over one protocol. Every method raises only :class:`DeepfakeError`."""

    url: str

    @abstractmethod
    def predict(
        self,
        target: Target,
        signature: str,
        inputs: Inputs,
        *,
        output_filter: Sequence[str] = (),
        timeout_s: float = DEFAULT_TIMEOUT_S,
        wait_s: float = 0.0,
    ) -> PredictResult:
        """Run ``signature`` of the target on ``inputs`` (numpy arrays, or byte strings).

        ``wait_s``: how long the call may wait for an unreachable server to come up, on top of
        ``timeout_s`` (gRPC's wait-for-ready; REST does not wait, its caller polls).
        """

    @abstractmethod
    def metadata(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> ModelMetadata:
        """The signatures of the target's version, and which version that is."""

    @abstractmethod
    def status(
        self, target: Target, *, timeout_s: float = DEFAULT_TIMEOUT_S, wait_s: float = 0.0
    ) -> dict[int, str]:
        """Each version's state (``AVAILABLE``, ``LOADING``, ...); labels are ignored, as in TF Serving."""

    def close(self) -> None:  # noqa: B027 - optional
        """Release connections."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def error_for(code: str, message: str) -> DeepfakeError:
    """The project's error for a gRPC status code name (``NOT_FOUND``, ``UNAVAILABLE``, ...)."""
    if UNKNOWN_LABEL_TEXT.lower() in message.lower():
        return NotFoundError(message)
    if code == "NOT_FOUND":
        return NotFoundError(message)
    if code in ("UNAVAILABLE", "RESOURCE_EXHAUSTED", "ABORTED"):
        return ServerUnavailableError(message)
    if code == "DEADLINE_EXCEEDED":
        return DeadlineExceededError(message)
    if code in ("INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE"):
        return InvalidInputError(message)
    return DeepfakeError(f"{code}: {message}")


HTTP_CODES = {  # TF Serving's status -> HTTP table (http_server.cc ToHTTPStatusCode), read backwards
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    408: "DEADLINE_EXCEEDED",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",  # also UNKNOWN and DATA_LOSS: a server error, not worth a retry (as over gRPC)
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def is_retryable(error: BaseException) -> bool:
    """Transient failures worth another try: unavailable, overloaded, connection reset (not timeouts)."""
    return isinstance(error, ServerUnavailableError) and not isinstance(error, DeadlineExceededError)


class RetryPolicy:
    """Retries of transient failures within a budget in seconds, shared by the calls of one client.

    A failure that is worth another try (:func:`is_retryable`: unavailable, overloaded, connection
    reset) opens an *outage*; calls keep being retried until the outage has lasted ``retry_for_s``
    (then the error is raised), and the first success closes it. The clock is shared: a folder scan
    that outlived the budget on one file does not wait again on each of the next ones (each still
    gets one try, so a server that came back is noticed at once).

    Each try is told how long it may wait for the server (``wait_s``, what is left of the budget
    during an outage, 0 otherwise): the gRPC transport then calls with ``wait_for_ready=True``, so
    the call waits for the channel to connect and goes out the moment the server listens; REST
    has no such thing and polls. Between tries: exponential backoff with full jitter (a uniform
    random time in ``[0, min(max_backoff_s, backoff_s * 2**k)]`` before try ``k``), never past
    the budget.

    Args:
        retry_for_s: how long an outage is ridden out (0: no retries by time).
        retries: at most this many retries of one call (None: as many as the budget allows).
        backoff_s: the first backoff's upper bound.
        max_backoff_s: the longest wait between two tries (the REST polling period's bound).
        rng: the jitter's random source.
        sleep: waits between tries (tests pass a recorder).
        clock: monotonic seconds.
    """

    def __init__(
        self,
        retry_for_s: float = DEFAULT_RETRY_FOR_S,
        *,
        retries: int | None = None,
        backoff_s: float = 0.1,
        max_backoff_s: float = 1.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        if retry_for_s < 0 or (retries is not None and retries < 0):
            raise InvalidInputError("the retry budget and the number of retries cannot be negative")
        self.retry_for_s = retry_for_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clock = clock
        self._lock = threading.Lock()
        self._outage_since: float | None = None

    def remaining_s(self) -> float:
        """What is left of the budget in the current outage (the whole budget outside one)."""
        with self._lock:
            since = self._outage_since
        if since is None:
            return self.retry_for_s
        return max(0.0, self.retry_for_s - (self._clock() - since))

    def call(self, call: Callable[[float], T]) -> T:
        """``call(wait_s=...)`` until it succeeds, fails for good, or the outage outlasts the budget."""
        attempt = 0
        while True:
            with self._lock:
                outage = self._outage_since is not None
            wait_s = self.remaining_s() if outage else 0.0
            try:
                result = call(wait_s=wait_s)
            except DeepfakeError as err:
                if not is_retryable(err):
                    raise
                now = self._clock()
                with self._lock:
                    opened = self._outage_since is None
                    if opened:
                        self._outage_since = now
                    left = self.retry_for_s - (now - self._outage_since)  # type: ignore[operator]
                timed = self.retry_for_s > 0
                if (self.retries is not None and attempt >= self.retries) or (
                    not timed and self.retries is None
                ):
                    raise
                if timed and left <= 0:
                    raise type(err)(f"{err} (gave up after {self.retry_for_s:g} s of retries)") from err
                if opened and timed:
                    log.warning("%s; retrying for up to %g s", err, self.retry_for_s)
                attempt += 1
                pause = self._rng.uniform(0.0, min(self.max_backoff_s, self.backoff_s * 2**attempt))
                self._sleep(min(pause, left) if timed else pause)
            else:
                if outage:
                    with self._lock:
                        self._outage_since = None
                return result


def call_with_retries(
    call: Callable[[], T],
    *,
    retries: int = 3,
    backoff_s: float = 0.1,
    max_backoff_s: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Call ``call``; on a retryable error try again up to ``retries`` times (no time budget).

    Waits with exponential backoff and full jitter: before try ``k`` (1-based), a uniform random
    time in ``[0, min(max_backoff_s, backoff_s * 2**k)]``. :class:`RetryPolicy` does the same
    within a budget in seconds.
    """
    policy = RetryPolicy(
        0.0, retries=retries, backoff_s=backoff_s, max_backoff_s=max_backoff_s, rng=rng, sleep=sleep
    )
    return policy.call(lambda wait_s: call())


def split_url(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` of ``grpc://``, ``grpcs://``, ``http://`` or ``https://`` URLs."""
    parts = urlsplit(url if "://" in url else f"grpc://{url}")
    scheme = parts.scheme.lower()
    defaults = {"grpc": 8500, "grpcs": 443, "http": 8501, "https": 443}
    if scheme not in defaults:
        raise InvalidInputError(f"unsupported server URL {url!r}: use grpc://, grpcs://, http:// or https://")
    if not parts.hostname:
        raise InvalidInputError(f"server URL {url!r} has no host")
    try:
        port = parts.port or defaults[scheme]
    except ValueError as err:
        raise InvalidInputError(f"server URL {url!r} has a bad port") from err
    return scheme, parts.hostname, port


def make_transport(
    url: str,
    *,
    root_certificates: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> Transport:
    """A transport for ``url``: ``grpc://host:8500`` (``grpcs://`` for TLS) or ``http(s)://host:8501``.

    Args:
        url: the server.
        root_certificates: PEM roots for TLS (default: the system's).
        headers: sent with every call, e.g. ``{"authorization": "Bearer ..."}``.

    Several replicas: a comma list of URLs or a gRPC target such as ``dns:///tfserving-pods:8500``
    (see :mod:`deepfake_client.transport.balanced`).
    """
    from deepfake_client.transport.balanced import is_balanced_url, make_balanced_transport

    if is_balanced_url(url):
        return make_balanced_transport(url, root_certificates=root_certificates, headers=headers)
    scheme, _, _ = split_url(url)
    if scheme in ("grpc", "grpcs"):
        from deepfake_client.transport.grpc import GrpcTransport

        return GrpcTransport(url, root_certificates=root_certificates, headers=headers)
    from deepfake_client.transport.rest import RestTransport

    return RestTransport(url, root_certificates=root_certificates, headers=headers)
