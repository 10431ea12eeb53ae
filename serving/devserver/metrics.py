"""Prometheus metrics with TF Serving's names, served at ``--monitoring_config_file``'s path.

TF Serving exports its TensorFlow monitoring metrics with ``/`` turned into ``:``; the two a
dashboard needs are ``:tensorflow:serving:request_count{model_name,status}`` (a counter) and
``:tensorflow:serving:request_latency{model_name,API,entrypoint}`` (a histogram in microseconds,
buckets 10 * 1.8^i, i < 33, as in ``servables/tensorflow/util.cc``).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
DEFAULT_PATH = "/monitoring/prometheus/metrics"
BUCKETS_US = [10 * 1.8**i for i in range(33)]


def read_monitoring_config(path: str) -> tuple[bool, str]:
    """``(enabled, path)`` of a MonitoringConfig text proto (``prometheus_config { enable path }``)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    enabled = re.search(r"enable\s*:\s*true", text) is not None
    match = re.search(r'path\s*:\s*"([^"]*)"', text)
    return enabled, (match.group(1) if match and match.group(1) else DEFAULT_PATH)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    return ",".join(f'{k}="{v}"' for k, v in pairs)


class Metrics:
    """Thread-safe counters and histograms rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[tuple[str, str], ...], int] = defaultdict(int)
        self._latency: dict[tuple[tuple[str, str], ...], list[float]] = {}

    def record_request(
        self, *, model_name: str, api: str, entrypoint: str, status: str, seconds: float
    ) -> None:
        """Count one request and add its latency."""
        micros = seconds * 1e6
        with self._lock:
            self._counts[(("model_name", model_name), ("status", status))] += 1
            key = (("model_name", model_name), ("API", api), ("entrypoint", entrypoint))
            cell = self._latency.setdefault(key, [0.0] * (len(BUCKETS_US) + 2))
            for i, bound in enumerate(BUCKETS_US):
                if micros <= bound:
                    cell[i] += 1
                    break
            else:
                cell[len(BUCKETS_US)] += 1
            cell[-1] += micros

    def render(self) -> str:
        """The Prometheus exposition text."""
        lines = [f"# TYPE {REQUEST_COUNT} counter"]
        with self._lock:
            for key, value in sorted(self._counts.items()):
                lines.append(f"{REQUEST_COUNT}{{{_labels(key)}}} {value}")
            lines.append(f"# TYPE {REQUEST_LATENCY} histogram")
            for key, cell in sorted(self._latency.items()):
                labels = _labels(key)
                running = 0.0
                for i, bound in enumerate(BUCKETS_US):
                    running += cell[i]
                    lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="{bound:g}"}} {running:g}')
                running += cell[len(BUCKETS_US)]
                lines.append(f'{REQUEST_LATENCY}_bucket{{{labels},le="+Inf"}} {running:g}')
                lines.append(f"{REQUEST_LATENCY}_sum{{{labels}}} {cell[-1]:g}")
                lines.append(f"{REQUEST_LATENCY}_count{{{labels}}} {running:g}")
        return "\n".join(lines) + "\n"
