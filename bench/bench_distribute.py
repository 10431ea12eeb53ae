"""Training throughput under tf.distribute, and Keras Tuner's overhead per trial.

Smoke-preset training (images/s of ``fit`` on the real input pipeline, after a warm-up, the best
of two rounds that alternate the settings) on one device against two logical CPU devices
(MirroredStrategy) and against two worker processes on localhost (MultiWorkerMirroredStrategy, a
TF_CONFIG each). Each setting runs in its own process:
logical devices and a worker's cluster are fixed before TensorFlow starts. Report only: on a
2-core machine two replicas share the same cores, so no speed-up is expected here.

Tuner overhead: a ``deepfake-tune`` search of 3 one-epoch trials, the search's wall time minus
the trials' own training runs, per trial, against the mean training run.
"""

from __future__ import annotations

import json
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time

MEASURE = "import sys; from bench.bench_distribute import measure; measure(*sys.argv[1:])"


def measure(crops: str, distribute: str, cpu_devices: str, steps: str) -> None:
    """Print ``{"images_per_s", "replicas"}`` of smoke-preset training (run in its own process)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from training.distribute import distributed_input, fit_across_workers, make_strategy, split_cpu

    if int(cpu_devices) > 1:
        split_cpu(int(cpu_devices))
    strategy, _ = make_strategy(distribute)
    from training.config import load_config
    from training.data import load_crops, make_dataset
    from training.train import _compile

    config = load_config("smoke")
    train_crops = load_crops(crops, "train")
    ds = make_dataset(train_crops, config, size=64, training=True, repeat=True)
    with strategy.scope():
        model = fit_across_workers(_compile(config, 64, total_steps=1000), distribute)
    ds = distributed_input(ds, strategy.num_replicas_in_sync, config.batch_size, count=None, training=True)
    model.fit(ds, epochs=1, steps_per_epoch=3, verbose=0)  # trace and warm up
    started = time.perf_counter()
    model.fit(ds, epochs=1, steps_per_epoch=int(steps), verbose=0)
    seconds = time.perf_counter() - started
    rate = int(steps) * config.batch_size / seconds
    print(json.dumps({"images_per_s": rate, "replicas": strategy.num_replicas_in_sync}), flush=True)


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _rate(crops: pathlib.Path, distribute: str, steps: int, *, devices: int = 1, workers: int = 1) -> float:
    command = [sys.executable, "-c", MEASURE, str(crops), distribute, str(devices), str(steps)]
    hosts = [f"127.0.0.1:{p}" for p in _free_ports(workers)]
    processes = []
    for index in range(workers):
        env = dict(os.environ)
        if distribute == "multi_worker":
            tf_config = {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
            env["TF_CONFIG"] = json.dumps(tf_config)
        processes.append(subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=900)[0] for p in processes]
    if any(p.returncode for p in processes):
        raise RuntimeError(f"{distribute}: a measuring process failed")
    return json.loads(outputs[0].strip().splitlines()[-1])["images_per_s"]  # the chief's, global


def _tuner_overhead(crops: pathlib.Path, root: pathlib.Path, trials: int) -> tuple[float, float]:
    import logging

    from training.config import load_config
    from training.tune import tune

    logging.getLogger("training").setLevel(logging.WARNING)
    config = load_config("smoke", ["epochs=1"])
    started = time.perf_counter()
    result = tune(config, crops, root / "search", trials=trials)
    wall = time.perf_counter() - started
    training = sum(row["train_seconds"] for row in result["trials"])
    return (wall - training) / trials, training / trials


def run(quick: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.prepare import prepare_dataset
    from training.synthetic import generate_dataset

    steps = 10 if quick else 30
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        data = generate_dataset(root / "data", 6 if quick else 12, frames=6)
        crops = root / "crops"
        prepare_dataset("folder", data, crops, size=64, frames=6, workers=2, progress=False)
        # the best of rounds that alternate the settings: the machine's other load comes and goes
        rates: dict[str, list[float]] = {"none": [], "mirrored": [], "multi_worker": []}
        for _ in range(1 if quick else 2):
            rates["none"].append(_rate(crops, "none", steps))
            rates["mirrored"].append(_rate(crops, "mirrored", steps, devices=2))
            rates["multi_worker"].append(_rate(crops, "multi_worker", steps, workers=2))
        one, mirrored, workers = (max(rates[k]) for k in ("none", "mirrored", "multi_worker"))
        for name, value in (
            ("smoke training, 2 logical CPU devices (mirrored)", mirrored),
            ("smoke training, 2 local workers (multi_worker)", workers),
        ):
            rows.append(
                {
                    "name": name,
                    "value": value,
                    "unit": "img/s",
                    "baseline": one,
                    "baseline_name": "1 device (none)",
                    "goal": "report (2 cores)",
                }
            )
        overhead, per_trial = _tuner_overhead(crops, root, 2 if quick else 3)
        rows.append(
            {
                "name": "deepfake-tune overhead per trial (beyond training)",
                "value": overhead,
                "unit": "s",
                "baseline": per_trial,
                "baseline_name": "training run per trial",
                "goal": "report",
            }
        )
    return rows
