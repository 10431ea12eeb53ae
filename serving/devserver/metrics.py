"""Prometheus metrics with TF Serving's names, served at ``--monitoring_config_file``'s path.

TF Serving exports its TensorFlow monitoring metrics with ``/`` turned into ``:``. The families
the dev server can measure, with TF Serving's labels, buckets and rules:

- ``request_count{model_name,status}``: every Predict, Classify and Regress over gRPC and every
  REST call, failed ones included (util.cc's RecordModelRequestCount);
- ``request_latency{model_name,API,entrypoint}``: successful calls only; the REST API label is
  the lower-case method of the path (``predict``, ``classify``, ``regress``; empty for GET);
- ``runtime_latency{model_name,API,runtime}``: the model run of Predict, Classify, Regress (``TF1``);
- ``request_example_counts{model}`` and ``request_example_count_total{model}``: MultiInference;
- ``model_warmup_latency{model_path,status}`` and ``model_warmup_records_read{model_path,status}``;
- ``batching_session:queuing_latency{thread_pool_name}`` and ``batching_session:wrapped_run_count``.

Latencies are in microseconds; buckets are TF Serving's (10 * 1.8^i, i < 33; queuing: 100 * 1.2^i,
i < 52; examples: 2^i, i < 15).
"""

from __future__ import annotations

import re
import threading
from collections import defaultdict

PREFIX = ":tensorflow:serving:"
REQUEST_COUNT = PREFIX + "request_count"
REQUEST_LATENCY = PREFIX + "request_latency"
RUNTIME_LATENCY = PREFIX + "runtime_latency"
EXAMPLE_COUNTS = PREFIX + "request_example_counts"
EXAMPLE_COUNT_TOTAL = PREFIX + "request_example_count_total"
WARMUP_LATENCY = PREFIX + "model_warmup_latency"
WARMUP_RECORDS = PREFIX + "model_warmup_records_read"
QUEUING_LATENCY = PREFIX + "batching_session:queuing_latency"
WRAPPED_RUNS = PREFIX + "batching_session:wrapped_run_count"
DEFAULT_PATH = "/monitoring/prometheus/metrics"
LATENCY_BUCKETS = tuple(10 * 1.8**i for i in range(33))
QUEUING_BUCKETS = tuple(100 * 1.2**i for i in range(52))
EXAMPLE_BUCKETS = tuple(float(2**i) for i in range(15))
_BUCKETS = {
    REQUEST_LATENCY: LATENCY_BUCKETS,
    RUNTIME_LATENCY: LATENCY_BUCKETS,
    WARMUP_LATENCY: LATENCY_BUCKETS,
    QUEUING_LATENCY: QUEUING_BUCKETS,
    EXAMPLE_COUNTS: EXAMPLE_BUCKETS,
}

Labels = tuple[tuple[str, str], ...]


def read_monitoring_config(path: str) -> tuple[bool, str]:
    """``(enabled, path)`` of a MonitoringConfig text proto (``prometheus_config { enable path }``)."""
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    enabled = re.search(r"enable\s*:\s*true", text) is not None
    match = re.search(r'path\s*:\s*"([^"]*)"', text)
    return enabled, (match.group(1) if match and match.group(1) else DEFAULT_PATH)


def _labels(pairs: Labels) -> str:
    return ",".join('{}="{}"'.format(k, v.replace("\\", "\\\\").replace('"', '\\"')) for k, v in pairs)


class Metrics:
    """Thread-safe counters and histograms rendered in the Prometheus text format."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counters: dict[str, dict[Labels, float]] = defaultdict(lambda: defaultdict(float))
        self._histograms: dict[str, dict[Labels, list[float]]] = defaultdict(dict)

    def _count(self, name: str, labels: Labels, amount: float = 1) -> None:
        with self._lock:
            self._counters[name][labels] += amount

    def _observe(self, name: str, labels: Labels, value: float) -> None:
        bounds = _BUCKETS[name]
        with self._lock:
            cell = self._histograms[name].setdefault(labels, [0.0] * (len(bounds) + 2))
            for i, bound in enumerate(bounds):
                if value <= bound:
                    cell[i] += 1
                    break
            else:
                cell[len(bounds)] += 1
            cell[-1] += value

    def count_request(self, *, model_name: str, status: str) -> None:
        """RecordModelRequestCount."""
        self._count(REQUEST_COUNT, (("model_name", model_name), ("status", status)))

    def observe_request(self, *, model_name: str, api: str, entrypoint: str, seconds: float) -> None:
        """RecordRequestLatency (successful calls)."""
        labels = (("model_name", model_name), ("API", api), ("entrypoint", entrypoint))
        self._observe(REQUEST_LATENCY, labels, seconds * 1e6)

    def record_request(
        self, *, model_name: str, api: str, entrypoint: str, status: str, seconds: float
    ) -> None:
        """One finished call: counted always, its latency only when it succeeded (as TF Serving)."""
        self.count_request(model_name=model_name, status=status)
        if status == "OK":
            self.observe_request(model_name=model_name, api=api, entrypoint=entrypoint, seconds=seconds)

    def observe_runtime(self, *, model_name: str, api: str, seconds: float) -> None:
        """RecordRuntimeLatency (runtime ``TF1``, as TF Serving's SavedModel path)."""
        labels = (("model_name", model_name), ("API", api), ("runtime", "TF1"))
        self._observe(RUNTIME_LATENCY, labels, seconds * 1e6)

    def record_examples(self, *, model_name: str, count: int) -> None:
        """RecordRequestExampleCount."""
        self._observe(EXAMPLE_COUNTS, (("model", model_name),), float(count))
        self._count(EXAMPLE_COUNT_TOTAL, (("model", model_name),), count)

    def observe_warmup(self, *, model_path: str, status: str, seconds: float, records: int) -> None:
        """saved_model_warmup_util.cc: the warm-up's duration and the records it read."""
        labels = (("model_path", model_path), ("status", status))
        self._observe(WARMUP_LATENCY, labels, seconds * 1e6)
        self._count(WARMUP_RECORDS, labels, records)

    def observe_batch(
        self, *, queued_s: list[float], thread_pool_name: str = "model_server_batch_threads"
    ) -> None:
        """batching_session.cc: one wrapped run and how long each of its requests queued."""
        for seconds in queued_s:
            self._observe(QUEUING_LATENCY, (("thread_pool_name", thread_pool_name),), seconds * 1e6)
        self._count(WRAPPED_RUNS, ())

    def value(self, name: str, **labels: str) -> float:
        """A counter's value (0 when never counted), for tests."""
        with self._lock:
            return self._counters[name].get(tuple(labels.items()), 0.0)

    def render(self) -> str:
        """The Prometheus exposition text."""
        lines: list[str] = []
        with self._lock:
            for name in sorted(self._counters):
                lines.append(f"# TYPE {name} counter")
                for key, value in sorted(self._counters[name].items()):
                    lines.append(f"{name}{{{_labels(key)}}} {value:g}" if key else f"{name} {value:g}")
            for name in sorted(self._histograms):
                lines.append(f"# TYPE {name} histogram")
                bounds = _BUCKETS[name]
                for key, cell in sorted(self._histograms[name].items()):
                    labels = _labels(key) + ","
                    running = 0.0
                    for i, bound in enumerate(bounds):
                        running += cell[i]
                        lines.append(f'{name}_bucket{{{labels}le="{bound:g}"}} {running:g}')
                    running += cell[len(bounds)]
                    lines.append(f'{name}_bucket{{{labels}le="+Inf"}} {running:g}')
                    lines.append(f"{name}_sum{{{_labels(key)}}} {cell[-1]:g}")
                    lines.append(f"{name}_count{{{_labels(key)}}} {running:g}")
        return "\n".join(lines) + "\n"
