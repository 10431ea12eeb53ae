"""The gateway's Prometheus metrics (``GET /metrics``, prometheus_client's text format).

One registry per app (two apps in one process do not share counters). What is counted:

| metric | type | labels |
| --- | --- | --- |
| ``deepfake_web_requests_total`` | counter | ``route``, ``code`` |
| ``deepfake_web_request_seconds`` | histogram | ``route`` |
| ``deepfake_web_upload_bytes_total`` | counter | |
| ``deepfake_web_scan_seconds`` | histogram | ``kind`` (video, image) |
| ``deepfake_web_verdicts_total`` | counter | ``label`` (FAKE, REAL, NO_FACE) |
| ``deepfake_web_no_face_ratio`` | gauge | share of NO_FACE among the last 100 verdicts |
| ``deepfake_web_refused_total`` | counter | ``reason`` (timeout, per_client, busy, too_large, storage) |
| ``deepfake_web_model_version`` | gauge | ``model``: the version that answered the last scan |
| ``deepfake_web_slots_in_use`` | gauge | ``stage`` (receiving, waiting, scanning) |
| ``deepfake_web_slots`` | gauge | ``stage``: the limits |
| ``deepfake_web_fake_probability`` | histogram | ``model_version``, ``target``: every scored face |
| ``deepfake_web_version_scan_seconds`` | histogram | ``model_version``: scan time, by who answered |
| ``deepfake_web_model_available`` | gauge | 1 if the last health check or scan reached a version |

TF Serving's own metrics carry no version label; the per-version ones here are what the dashboard
(deploy/monitoring) compares a canary and stable with.

The NO_FACE rate over any window is also
``rate(deepfake_web_verdicts_total{label="NO_FACE"}[5m]) / rate(deepfake_web_verdicts_total[5m])``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

SCAN_BUCKETS_S = (0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 21))
NO_FACE_WINDOW = 100
REFUSAL_REASONS = {  # error class name -> reason label
    "UploadTimeoutError": "timeout",
    "UploadTooLargeError": "too_large",
    "TooManyUploadsError": "per_client",
    "GatewayBusyError": "busy",
    "StorageFullError": "storage",
    "StorageUnavailableError": "storage",
}


def target_kind(target: str | None) -> str:
    """A verdict's target as a label value: ``label:canary`` -> ``canary``, ``version:3`` -> ``version``."""
    kind, _, name = (target or "latest").partition(":")
    return name if kind == "label" else kind


class GatewayMetrics:
    """The counters, histograms and gauges of one gateway app."""

    def __init__(self, model: str) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.model = model
        self.requests = Counter(
            "deepfake_web_requests", "HTTP requests by route and status code", ["route", "code"], registry=r
        )
        self.request_seconds = Histogram(
            "deepfake_web_request_seconds", "HTTP request duration by route", ["route"], registry=r
        )
        self.upload_bytes = Counter("deepfake_web_upload_bytes", "bytes of uploads received", registry=r)
        self.scan_seconds = Histogram(
            "deepfake_web_scan_seconds",
            "time to scan one received upload (decode, detect, crop, predict)",
            ["kind"],
            buckets=SCAN_BUCKETS_S,
            registry=r,
        )
        self.verdicts = Counter("deepfake_web_verdicts", "verdicts by label", ["label"], registry=r)
        self._recent_labels: deque[str] = deque(maxlen=NO_FACE_WINDOW)
        no_face = Gauge(
            "deepfake_web_no_face_ratio",
            f"share of NO_FACE among the last {NO_FACE_WINDOW} verdicts",
            registry=r,
        )
        no_face.set_function(self._no_face_ratio)
        self.refused = Counter(
            "deepfake_web_refused", "uploads refused before a scan, by reason", ["reason"], registry=r
        )
        self.model_version = Gauge(
            "deepfake_web_model_version",
            "the model version that answered the last scan",
            ["model"],
            registry=r,
        )
        self.slots_in_use = Gauge("deepfake_web_slots_in_use", "upload slots in use", ["stage"], registry=r)
        self.slots = Gauge("deepfake_web_slots", "upload slots available in all", ["stage"], registry=r)
        self.fake_probability = Histogram(
            "deepfake_web_fake_probability",
            "P(fake) of every scored face, by the version that answered and the target asked for",
            ["model_version", "target"],
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.version_scan_seconds = Histogram(
            "deepfake_web_version_scan_seconds",
            "time to scan one received upload, by the version that answered",
            ["model_version"],
            buckets=SCAN_BUCKETS_S,
            registry=r,
        )
        self.model_available = Gauge(
            "deepfake_web_model_available",
            "1 when the last health check or scan reached a model version, else 0",
            registry=r,
        )
        for label in ("FAKE", "REAL", "NO_FACE"):
            self.verdicts.labels(label)  # present at 0 from the start, so rates are defined

    def _no_face_ratio(self) -> float:
        labels = self._recent_labels
        return sum(label == "NO_FACE" for label in labels) / len(labels) if labels else 0.0

    def watch_slots(self, stage: str, in_use: Callable[[], float], capacity: int) -> None:
        """Report ``in_use()`` at every scrape as the slots of ``stage`` in use, out of ``capacity``."""
        self.slots_in_use.labels(stage).set_function(in_use)
        self.slots.labels(stage).set(capacity)

    def observe_request(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.request_seconds.labels(route).observe(seconds)

    def observe_refusal(self, error: Exception) -> None:
        reason = REFUSAL_REASONS.get(type(error).__name__)
        if reason:
            self.refused.labels(reason).inc()

    def observe_scan(self, verdict: dict[str, Any], seconds: float) -> None:
        self.scan_seconds.labels(verdict.get("kind", "video")).observe(seconds)
        self.verdicts.labels(verdict["label"]).inc()
        self._recent_labels.append(verdict["label"])
        version = verdict.get("model_version")
        if version is not None:
            self.model_version.labels(verdict.get("model_name") or self.model).set(version)
            self.version_scan_seconds.labels(str(version)).observe(seconds)
            target = target_kind(verdict.get("target"))
            for face in verdict.get("faces") or ():
                self.fake_probability.labels(str(version), target).observe(face["fake_probability"])
        self.model_available.set(1)

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST
