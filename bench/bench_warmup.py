"""First-request latency of a freshly loaded version, with its warm-up records vs without.

The same exported version is served twice by a fresh dev server process: once as exported (the
server replays ``assets.extra/tf_serving_warmup_requests`` before it marks the version AVAILABLE),
once with the warm-up file removed. The figure is the latency of the first real gRPC Predict
(8 crops). Full run: EfficientNet-B0 at 224x224; ``--quick``: the tiny CNN at 64x64.
"""

from __future__ import annotations

import pathlib
import shutil
import tempfile
import time

import numpy as np

from deepfake_client.contract import IMAGES_INPUT, MODEL_NAME, WARMUP_FILE
from deepfake_client.transport.base import Target, make_transport


def first_request_ms(
    repository: pathlib.Path, version: int, size: int, log: pathlib.Path
) -> tuple[float, float]:
    """(first, median of the next 5) request latencies in ms on a fresh server over ``repository``."""
    from export.modelconfig import initial_config, save_config
    from serving.devserver.launcher import start_devserver, stop_devserver

    config = repository / "models.config"
    save_config(config, initial_config(str(repository / MODEL_NAME), version))
    server = start_devserver(config, log)
    images = np.random.default_rng(1).integers(0, 256, size=(8, size, size, 3), dtype=np.uint8)
    try:
        with make_transport(server.grpc_url) as transport:
            transport.status(Target())  # the channel is connected: only the model's cost remains
            times = []
            for _ in range(6):
                start = time.perf_counter()
                transport.predict(Target(version=version), "serving_default", {IMAGES_INPUT: images})
                times.append((time.perf_counter() - start) * 1000)
    finally:
        stop_devserver(server)
    return times[0], float(np.median(times[1:]))


def run(quick: bool) -> list[dict]:
    from export.version import export_model
    from training.models import build_model

    name, size = ("tiny", 64) if quick else ("efficientnet_b0", 224)
    with tempfile.TemporaryDirectory() as tmp:
        warm = pathlib.Path(tmp) / "warm"
        result = export_model(build_model(name, size), warm, backbone=name)
        cold = pathlib.Path(tmp) / "cold"
        shutil.copytree(warm, cold)
        (cold / MODEL_NAME / str(result.version) / WARMUP_FILE).unlink()
        warm_first, warm_steady = first_request_ms(warm, result.version, size, pathlib.Path(tmp) / "warm.log")
        cold_first, cold_steady = first_request_ms(cold, result.version, size, pathlib.Path(tmp) / "cold.log")
    return [
        {
            "name": f"first request, warmed up ({name}, batch 8)",
            "value": warm_first,
            "unit": "ms",
            "baseline": cold_first,
            "baseline_name": "first request, no warm-up",
            "goal": "ratio < 1",
        },
        {
            "name": "first / steady-state request, warmed up",
            "value": warm_first,
            "unit": "ms",
            "baseline": warm_steady,
            "baseline_name": "steady-state request (median)",
            "goal": "ratio near 1",
        },
        {
            "name": "first / steady-state request, no warm-up",
            "value": cold_first,
            "unit": "ms",
            "baseline": cold_steady,
            "baseline_name": "steady-state request (median)",
            "goal": "(for comparison)",
        },
    ]
