"""``import deepfake_client`` (with its client and gRPC transport) vs importing the official stubs.

Each import runs in a fresh interpreter that reports its own import time and its resident memory
(VmRSS) after the import, and how much the import added to it. Goal: <= 0.3 s and <= 100 MB.
Also reported: the same after the default face detector is loaded (OpenCV, ONNX Runtime and the
CenterFace session, which the client loads on its first image or video, not at import).
"""

from __future__ import annotations

import json
import subprocess
import sys

_PROBE = """
import json, sys, time
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
base = rss_mb()
t = time.perf_counter()
exec(sys.argv[1])
dt = time.perf_counter() - t
after = rss_mb()
print(json.dumps({"s": dt, "mb": after, "added_mb": after - base}))
"""

OURS = (
    "import deepfake_client; from deepfake_client import DetectorClient; "
    "import deepfake_client.transport.grpc, deepfake_client.transport.rest"
)
WITH_DETECTOR = OURS + "; from deepfake_client.faces import make_detector; make_detector()"
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
    return {key: min(r[key] for r in runs) for key in ("s", "mb", "added_mb")}


def run(quick: bool) -> list[dict]:
    repeats = 1 if quick else 3
    ours, official = _measure(OURS, repeats), _measure(OFFICIAL, repeats)
    loaded = _measure(WITH_DETECTOR, repeats)
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
            "name": "process RSS after the client import",
            "value": ours["mb"],
            "unit": "MB",
            "baseline": official["mb"],
            "baseline_name": "official tensorflow_serving.apis",
            "goal": "<= 100 MB",
        },
        {
            "name": "RSS added by the client import",
            "value": ours["added_mb"],
            "unit": "MB",
            "baseline": official["added_mb"],
            "baseline_name": "official tensorflow_serving.apis",
            "goal": "report",
        },
        {
            "name": "client import + default face detector loaded: time",
            "value": loaded["s"],
            "unit": "s",
            "baseline": official["s"],
            "baseline_name": "official tensorflow_serving.apis",
            "goal": "report",
        },
        {
            "name": "client import + default face detector loaded: RSS",
            "value": loaded["mb"],
            "unit": "MB",
            "baseline": official["mb"],
            "baseline_name": "official tensorflow_serving.apis",
            "goal": "report",
        },
    ]
