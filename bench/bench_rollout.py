"""Rollout under load on the dev server: p99 latency during a version swap vs before it, and the
server's memory with two versions resident vs one.

A client thread sends gRPC Predict requests (4 crops) to the ``stable`` label without pause while
``deepfake-rollout`` serves version 2, labels it canary and promotes it. Full run: EfficientNet-B0
at 224x224 (random weights); ``--quick``: the tiny CNN at 64x64.
"""

from __future__ import annotations

import pathlib
import tempfile
import threading
import time

import numpy as np

from deepfake_client.contract import IMAGES_INPUT, MODEL_NAME
from deepfake_client.transport.base import Target, make_transport


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB, from /proc."""
    fields = dict(line.split(":", 1) for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def run(quick: bool) -> list[dict]:
    from export.version import export_model
    from serving.devserver.launcher import start_devserver, stop_devserver
    from serving.rollout import Rollout
    from training.models import build_model

    name, size = ("tiny", 64) if quick else ("efficientnet_b0", 224)
    with tempfile.TemporaryDirectory() as tmp:
        repository = pathlib.Path(tmp) / "models"
        first = export_model(build_model(name, size), repository, backbone=name)
        second = export_model(build_model(name, size), repository, backbone=name)
        rollout = Rollout(repository=repository)
        from export.modelconfig import initial_config, save_config

        save_config(rollout.config_path, initial_config(str(repository / MODEL_NAME), first.version))
        server = start_devserver(rollout.config_path, pathlib.Path(tmp) / "server.log")
        transport = make_transport(server.grpc_url)
        rollout.servers = [transport]
        samples: list[tuple[float, float]] = []
        failures: list[str] = []
        stop = threading.Event()
        images = np.random.default_rng(0).integers(0, 256, size=(4, size, size, 3), dtype=np.uint8)

        def load() -> None:
            with make_transport(server.grpc_url) as client:
                while not stop.is_set():
                    start = time.perf_counter()
                    try:
                        client.predict(Target(label="stable"), "serving_default", {IMAGES_INPUT: images})
                        samples.append((start, time.perf_counter() - start))
                    except Exception as err:  # noqa: BLE001 - every failure counts
                        failures.append(repr(err))

        try:
            thread = threading.Thread(target=load, daemon=True)
            thread.start()
            time.sleep(1.0)  # first requests
            one_version = rss_mb(server.process.pid)[0]
            before_start = time.perf_counter()
            time.sleep(4.0 if quick else 8.0)
            swap_start = time.perf_counter()
            rollout.canary(second.version)
            two_versions, _ = rss_mb(server.process.pid)
            rollout.promote(keep=1)
            swap_end = time.perf_counter()
            time.sleep(1.0)
            stop.set()
            thread.join(30)
            peak = rss_mb(server.process.pid)[1]
        finally:
            transport.close()
            stop_devserver(server)
    before = [lat for t, lat in samples if before_start <= t < swap_start]
    during = [lat for t, lat in samples if swap_start <= t < swap_end]
    p99 = lambda xs: float(np.percentile(xs, 99)) * 1000 if xs else float("nan")  # noqa: E731
    return [
        {
            "name": f"p99 latency during swap ({name}, {len(during)} req)",
            "value": p99(during),
            "unit": "ms",
            "baseline": p99(before),
            "baseline_name": f"p99 before swap ({len(before)} req)",
            "goal": "ratio small; 0 failures",
        },
        {
            "name": "failed requests during the rollout",
            "value": float(len(failures)),
            "unit": "count",
            "baseline": float(len(samples)),
            "baseline_name": "requests sent",
            "goal": "0",
        },
        {
            "name": "server RSS with two versions resident",
            "value": two_versions,
            "unit": "MB",
            "baseline": one_version,
            "baseline_name": "RSS with one version",
            "goal": "< 2x",
        },
        {
            "name": "server peak RSS (VmHWM) over the rollout",
            "value": peak,
            "unit": "MB",
            "baseline": one_version,
            "baseline_name": "RSS with one version",
            "goal": "< 2x",
        },
    ]
