"""Training input: crops streamed from disk vs the in-memory cache, throughput and memory peak.

Crops of a large set (FF++, DFDC) cannot all stay decoded in memory (FF++ c23 at 380 px: ~60 GB),
so beyond ``cache_limit_mb`` they are streamed: the file list is shuffled every epoch and each crop
read and decoded again. This measures what that costs against the in-memory cache on the same
PNG crops (written here): images per second over a full epoch after a warm-up epoch (the cache
filled, the page cache warm for both) and the peak resident memory of each, each mode in its own
process so that one's memory does not count for the other. Streaming decodes every crop every
epoch, so its throughput is bound by PNG decoding and grows with the cores (a GPU server's 8-16
cores decode faster than an EfficientNet-B4 step consumes); the goal is memory: its growth does
not depend on the set's size (< 0.5x the cache's here, a fraction of it on FF++ or DFDC).
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, resource, sys, time
import numpy as np
from training.config import load_config
from training.data import Crops, make_dataset

def rss_mb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0

paths, size, cache = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
crops = Crops(paths, np.arange(len(paths)) % 2, [str(i) for i in range(len(paths))])
config = load_config("tiny", [f"cache={cache}", "augment=false", "batch_size=32", "cache_limit_mb=100000"])
ds = make_dataset(crops, config, size=size, training=True)
before = rss_mb()
for _ in ds:  # warm-up epoch: fills the cache (in memory) or the page cache (streamed)
    pass
start, images = time.perf_counter(), 0
for x, _ in ds:
    images += int(x.shape[0])
rate = images / (time.perf_counter() - start)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"rate": rate, "peak_mb": peak, "growth_mb": peak - before}))
"""


def _write_crops(root: pathlib.Path, count: int, size: int) -> list[str]:
    import cv2
    import numpy as np

    from training.synthetic import real_face

    face = cv2.resize(real_face(), (size, size), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):  # the same face with noise: PNG sizes like real crops, no two alike
        noisy = np.clip(face.astype(np.int16) + rng.integers(-12, 13, face.shape), 0, 255).astype(np.uint8)
        path = root / f"{i:05d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(noisy, cv2.COLOR_RGB2BGR))
        paths.append(str(path))
    return paths


def _measure(paths: list[str], size: int, cache: str) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, json.dumps(paths), str(size), cache],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        cwd=pathlib.Path(__file__).resolve().parents[1],
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run(quick: bool) -> list[dict]:
    count, size = (600, 160) if quick else (2000, 224)
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_crops(pathlib.Path(tmp), count, size)
        memory = _measure(paths, size, "true")
        streamed = _measure(paths, size, "false")
    label = f"{count} PNG crops at {size} px"
    return [
        {
            "name": f"streamed from disk, {label} (images/s)",
            "value": streamed["rate"],
            "unit": "img/s",
            "baseline": memory["rate"],
            "baseline_name": "in-memory cache",
            "goal": "decode-bound: scales with cores",
        },
        {
            "name": f"memory growth while training, streamed, {label}",
            "value": streamed["growth_mb"],
            "unit": "MB",
            "baseline": memory["growth_mb"],
            "baseline_name": "in-memory cache",
            "goal": "ratio < 0.5",
        },
        {
            "name": f"peak resident memory, streamed, {label}",
            "value": streamed["peak_mb"],
            "unit": "MB",
            "baseline": memory["peak_mb"],
            "baseline_name": "in-memory cache",
            "goal": "lower",
        },
    ]
