"""A bulk job's progress as Prometheus metrics, for the "bulk job stalled" alert.

A batch job is not scraped like a server: its progress goes where Prometheus can read it anyway.
``<out>/progress.prom`` is rewritten (atomically) at every finished shard, in the text format that
node_exporter's textfile collector reads, and ``--pushgateway URL`` also pushes it to a Prometheus
Pushgateway (the usual home of batch jobs' metrics). deploy/monitoring/alerts.yml fires
``DeepfakeBulkStalled`` when a running job has finished no shard for 15 minutes.
"""

from __future__ import annotations

import pathlib
import time


class BulkMetrics:
    """``deepfake_bulk_*`` gauges of one run, written to ``path`` and pushed to ``pushgateway``."""

    def __init__(self, command: str, total: int, path: pathlib.Path, pushgateway: str | None = None):
        from prometheus_client import CollectorRegistry, Gauge

        self.registry = CollectorRegistry()
        self.path, self.pushgateway, self.command = path, pushgateway, command
        labels = ["command"]

        def gauge(name: str, text: str) -> Gauge:
            return Gauge(name, text, labels, registry=self.registry).labels(command)

        self.total = gauge("deepfake_bulk_sources", "sources this run has to do")
        self.done = gauge("deepfake_bulk_done", "sources done by this run (verdict or error row)")
        self.failed = gauge("deepfake_bulk_failed", "sources of this run that got an error row")
        self.running = gauge("deepfake_bulk_running", "1 while the run goes on, 0 once it ended")
        self.last = gauge(
            "deepfake_bulk_last_progress_timestamp_seconds", "when the run last finished a shard (Unix time)"
        )
        self.total.set(total)
        self.running.set(1)
        self.last.set(time.time())
        self.flush()

    def update(self, done: int, failed: int) -> None:
        self.done.inc(done)
        self.failed.set(failed)
        self.last.set(time.time())
        self.flush()

    def close(self) -> None:
        self.running.set(0)
        self.flush()

    def flush(self) -> None:
        from prometheus_client import push_to_gateway, write_to_textfile

        write_to_textfile(str(self.path), self.registry)  # a temporary file, then a rename
        if self.pushgateway:
            try:
                push_to_gateway(self.pushgateway, job="deepfake-bulk", registry=self.registry, timeout=5)
            except OSError:
                pass  # the job goes on; the textfile still has its progress
