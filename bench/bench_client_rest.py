"""A scan over REST vs the same scan over gRPC: the realistic clip's 64 faces, one dev server, one run.

The server is the dev server (gRPC and REST) with a version made by the real export path at input
size 224 whose model costs next to nothing (``write_contract_model``), so what differs is the wire:
over gRPC the uint8 tensor's raw bytes; over REST, ``encoding="auto"``'s stored PNGs through the
``encoded`` signature, or the uint8 tensor as JSON numbers (what the client sent before). Figures:
the whole scan (decode, detect, crop, score) and the scoring alone of the same prepared faces,
medians of interleaved rounds. Goal: a REST scan <= 1.3x the gRPC scan.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time

import numpy as np


def run(quick: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from bench.bench_client_preprocess import make_realistic_clip
    from deepfake_client import DetectorClient
    from serving.devserver.launcher import start_devserver, stop_devserver
    from serving.devserver.testmodels import write_contract_model

    clip = make_realistic_clip()
    rounds = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        base = pathlib.Path(tmp) / "deepfake_detector"
        write_contract_model(base / "1", version=1, input_size=224)
        server = start_devserver(
            None,
            pathlib.Path(tmp) / "server.log",
            "--model_name=deepfake_detector",
            f"--model_base_path={base}",
            labels_at_startup=False,
            timeout_s=180,
        )
        ways = {
            "gRPC": (server.grpc_url, "auto"),
            "REST auto (PNG)": (server.rest_url, "auto"),
            "REST uint8 JSON": (server.rest_url, "uint8"),
        }
        clients = {name: DetectorClient(url, label=None, encoding=enc) for name, (url, enc) in ways.items()}
        try:
            prepared = clients["gRPC"].prepare(clip)
            faces = len(prepared.faces)
            scan: dict[str, list[float]] = {name: [] for name in ways}
            score: dict[str, list[float]] = {name: [] for name in ways}
            for client in clients.values():
                client.score(prepared)  # connections, metadata, the server's first calls
            for _ in range(rounds):  # interleaved, so a slow spell hits every way alike
                for name, client in clients.items():
                    t = time.perf_counter()
                    client.score(prepared)
                    score[name].append(time.perf_counter() - t)
                    t = time.perf_counter()
                    client.scan(clip)
                    scan[name].append(time.perf_counter() - t)
        finally:
            for client in clients.values():
                client.close()
            stop_devserver(server)
    rows = []
    for name in ("REST auto (PNG)", "REST uint8 JSON"):
        rows.append(
            {
                "name": f"scan, realistic 10 s 720p clip ({faces} faces), {name}",
                "value": float(np.median(scan[name])),
                "unit": "s",
                "baseline": float(np.median(scan["gRPC"])),
                "baseline_name": f"the same scan over gRPC (medians of {rounds})",
                "goal": "<= 1.3x" if "auto" in name else "reference (before)",
            }
        )
        rows.append(
            {
                "name": f"scoring {faces} prepared faces, {name}",
                "value": float(np.median(score[name])),
                "unit": "s",
                "baseline": float(np.median(score["gRPC"])),
                "baseline_name": "gRPC uint8",
                "goal": "report",
            }
        )
    return rows
