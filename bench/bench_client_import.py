"""``import deepfake_client`` (with its client and gRPC transport) vs importing the official stubs.

Each import runs in a fresh interpreter that reports its own import time and peak RSS growth.
Goal: <= 0.3 s and <= 100 MB.
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, resource, sys, time
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
exec(sys.argv[1])
dt = time.perf_counter() - t
print(json.dumps({"s": dt, "mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024}))
"""

OURS = (
    "import deepfake_client; from deepfake_client import DetectorClient; "
    "import deepfake_client.transport.grpc, deepfake_client.transport.rest"
)
OFFICIAL = (
    "from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc, get_model_metadata_pb2"
)


def _measure(code: str, repeats: int) -> dict:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", _PROBE, code], capture_output=True, text=True, check=True, timeout=300
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return {"s": min(r["s"] for r in runs), "mb": min(r["mb"] for r in runs)}


def run(quick: bool) -> list[dict]:
    repeats = 1 if quick else 3
    ours, official = _measure(OURS, repeats), _measure(OFFICIAL, repeats)
    return [
        {
            "name": "client import time (client + transports)",
            "value": ours["s"],
            "unit": "s",
            "baseline": official["s"],
            "baseline_name": "official tensorflow_serving.apis",
            "goal": "<= 0.3 s",
        },
        {
            "name": "client import memory",
            "value": ours["mb"],
            "unit": "MB",
            "baseline": official["mb"],
            "baseline_name": "official tensorflow_serving.apis",
            "goal": "<= 100 MB",
        },
    ]
