"""Bulk throughput: ``deepfake-bulk scan`` on a local Ray cluster vs ``deepfake-scan --workers``, same files.

N clips (2 s, 640x360, H.264, a moving real face; 16 frames sampled each) and one dev server with
a version of the contract's form whose model costs next to nothing (``write_contract_model``), so
what is measured is the client side: decode, detect, crop, send. Each command runs as a subprocess.
Two figures each: the wall time of the whole run, and the cost of a file once the pipeline is warm:
for ``deepfake-scan``, the time between its first and its last JSON row over N - 1 files; for
``deepfake-bulk``, from its first shard's result to its last over the files after that shard (its
summary's ``first_result_s`` and ``last_result_s``), which leaves out Ray's start-up and shut-down,
paid once per job. Rows: bulk with
1 and 2 workers against ``deepfake-scan --workers`` 1 and 2. Goal: a warm file costs bulk <= 1.2x
what it costs the plain CLI.
"""

from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(command: list[str]) -> tuple[float, list[float], str]:
    """Wall time, the times (since start) at which stdout lines came, and the last line."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    stamps, last = [], ""
    for line in process.stdout:  # type: ignore[union-attr]
        stamps.append(time.perf_counter() - start)
        last = line
    stderr = process.stderr.read()  # type: ignore[union-attr]
    code = process.wait(900)
    if code not in (0,):
        raise RuntimeError(f"{command[:5]} exited {code}: {stderr[-2000:]}")
    return time.perf_counter() - start, stamps, last


def run(quick: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.devserver.launcher import start_devserver, stop_devserver
    from serving.devserver.testmodels import write_contract_model
    from training.synthetic import moving_face_frames, write_video

    count = 8 if quick else 24
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        many = root / "many"
        many.mkdir()
        for i in range(count):
            write_video(many / f"clip{i:02d}.mp4", moving_face_frames(count=50, seed=i), fps=25)
        base = root / "models" / "deepfake_detector"
        write_contract_model(base / "1", version=1, input_size=224)
        server = start_devserver(
            None,
            root / "server.log",
            "--model_name=deepfake_detector",
            f"--model_base_path={base}",
            labels_at_startup=False,
            timeout_s=180,
        )
        common = [f"--server={server.grpc_url}", "--latest", "--frames=16", "--json", "--quiet"]
        results: dict[tuple[str, int], tuple[float, float]] = {}  # (wall, warm seconds per file)
        try:
            for workers in (1, 2):  # interleaved: a slow spell hits both commands alike
                wall, stamps, _ = _run(
                    [sys.executable, "-m", "deepfake_client.cli", str(many), *common, f"--workers={workers}"]
                )
                assert len(stamps) == count
                results["scan", workers] = (wall, (stamps[-1] - stamps[0]) / (count - 1))
                out = root / f"out{workers}"
                args = [str(many), *common, f"--workers={workers}", f"--out={out}"]
                wall, _, last = _run([sys.executable, "-m", "serving.bulk.cli", "scan", *args])
                summary = json.loads(last)
                assert summary["verdicts"] == count and summary["errors"] == 0, summary
                warm = (summary["last_result_s"] - summary["first_result_s"]) / (
                    count - summary["first_result_files"]
                )
                results["bulk", workers] = (wall, warm)
        finally:
            stop_devserver(server)
    rows = []
    for workers in (1, 2):
        (bulk_wall, bulk_warm), (scan_wall, scan_warm) = results["bulk", workers], results["scan", workers]
        baseline = f"deepfake-scan --workers {workers}"
        rows += [
            {
                "name": f"bulk, {workers} Ray worker(s): a file, pipeline warm",
                "value": bulk_warm,
                "unit": "s/file",
                "baseline": scan_warm,
                "baseline_name": baseline,
                "goal": "<= 1.2x",
            },
            {
                "name": f"bulk, {workers} Ray worker(s): {count} files, wall (Ray start-up included)",
                "value": bulk_wall,
                "unit": "s",
                "baseline": scan_wall,
                "baseline_name": baseline,
                "goal": "report",
            },
        ]
    return rows
