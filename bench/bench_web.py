"""The HTTP gateway's cost: a scan through ``deepfake-web`` vs the same scan with ``DetectorClient``.

Both talk gRPC to the same dev server (the contract test model, which costs almost nothing, so
the figures are the pipeline's and the gateway's, not the model's). The clip is 10 s of 640x360
H.264 with one moving face. Rows:

- one upload at a time: gateway latency (upload + multipart + temp file + scan + JSON) vs the
  client scanning the file in this process; goal: <= 1.15x.
- 8 uploads at once (gateway: 2 scans at a time) vs the client scanning 8 files on 2 threads:
  clips per second; goal: >= 0.85x.
- the gateway's peak resident memory (/proc VmHWM) during the 8 concurrent uploads vs its resident
  memory when warm; goal: <= 1.5x (uploads stream to disk, frames are decoded one at a time).
- 8 uploads at once while 20 stalled clients (headers and a first chunk, then silence, each from
  its own 127.0.0.x address) hold receiving slots vs the same 8 with nobody stalling, interleaved
  rounds, medians; goal: >= 0.8x (stalled uploads hold no scan slot).
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

MODEL = "deepfake_detector"
CONCURRENCY = 2
UPLOADS = 8
STALLED = 20


def _write_clip(path: pathlib.Path, seconds: float, fps: int = 25) -> None:
    from training.synthetic import moving_face_frames, write_video

    frames = list(moving_face_frames(count=2 * fps))
    write_video(path, (frames[i % len(frames)] for i in range(int(seconds * fps))), fps=fps)


def _status_kb(pid: int, key: str) -> int:
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def _start_gateway(server: str, tmp: pathlib.Path) -> tuple[subprocess.Popen, str]:
    from serving.devserver.launcher import free_port

    port = free_port()
    command = [
        sys.executable,
        "-m",
        "deepfake_client.web.cli",
        f"--server={server}",
        f"--port={port}",
        "--label=",
        f"--concurrency={CONCURRENCY}",
        f"--upload-dir={tmp / 'uploads'}",
        "--log-level=warning",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=open(tmp / "gateway.log", "wb"))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/openapi.json", timeout=2):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError((tmp / "gateway.log").read_text())


def _receiving(url: str) -> float:
    import httpx

    from tests.web.conftest import metric

    return metric(httpx.get(f"{url}/metrics").text, "deepfake_web_slots_in_use", stage="receiving")


def _with_stalled(port: int, url: str, measure) -> float:  # type: ignore[no-untyped-def]
    """``measure()`` while ``STALLED`` clients hold a receiving slot each (well within the idle timeout)."""
    from tests.web.conftest import stall_upload

    sockets = [stall_upload(port, f"127.0.0.{2 + i}") for i in range(STALLED)]
    try:
        deadline = time.monotonic() + 5
        while _receiving(url) < STALLED and time.monotonic() < deadline:
            time.sleep(0.05)
        if _receiving(url) != STALLED:
            raise RuntimeError(f"expected {STALLED} stalled uploads in the gateway, saw {_receiving(url)}")
        return measure()
    finally:
        for sock in sockets:
            sock.close()


def run(quick: bool) -> list[dict]:
    """Measure the gateway against the in-process client; returns the runner's rows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import httpx

    from deepfake_client.client import DetectorClient
    from serving.devserver.launcher import start_devserver, stop_devserver
    from serving.devserver.testmodels import write_contract_model

    rounds = 2 if quick else 5
    with tempfile.TemporaryDirectory() as name:
        tmp = pathlib.Path(name)
        write_contract_model(tmp / MODEL / "1", version=1, input_size=64)
        clip = tmp / "clip.mp4"
        _write_clip(clip, 10.0)
        data = clip.read_bytes()
        server = start_devserver(
            None,
            tmp / "devserver.log",
            f"--model_name={MODEL}",
            f"--model_base_path={tmp / MODEL}",
            labels_at_startup=False,
        )
        gateway, url = _start_gateway(server.grpc_url, tmp)
        try:

            def upload(i: int = 0) -> float:
                start = time.perf_counter()
                reply = httpx.post(
                    f"{url}/v1/scan", files={"file": (f"c{i}.mp4", data, "video/mp4")}, timeout=300
                )
                if reply.status_code != 200:
                    raise RuntimeError(reply.text)
                return time.perf_counter() - start

            with DetectorClient(server.grpc_url) as client:
                client.scan(clip)
                upload()  # warm both
                direct, through = [], []
                for _ in range(rounds):
                    start = time.perf_counter()
                    client.scan(clip)
                    direct.append(time.perf_counter() - start)
                    through.append(upload())
                before_kb = _status_kb(gateway.pid, "VmRSS")
                start = time.perf_counter()
                with ThreadPoolExecutor(UPLOADS) as pool:
                    list(pool.map(upload, range(UPLOADS)))
                gateway_rate = UPLOADS / (time.perf_counter() - start)
                peak_kb = _status_kb(gateway.pid, "VmHWM")
                start = time.perf_counter()
                with ThreadPoolExecutor(CONCURRENCY) as pool:
                    list(pool.map(lambda _: client.scan(clip), range(UPLOADS)))
                direct_rate = UPLOADS / (time.perf_counter() - start)

                def rate() -> float:
                    start = time.perf_counter()
                    with ThreadPoolExecutor(UPLOADS) as pool:
                        list(pool.map(upload, range(UPLOADS)))
                    return UPLOADS / (time.perf_counter() - start)

                plain, attacked = [], []
                for _ in range(rounds):
                    plain.append(rate())
                    attacked.append(_with_stalled(int(url.rsplit(":", 1)[1]), url, rate))
        finally:
            gateway.terminate()
            gateway.wait(30)
            stop_devserver(server)
    return [
        {
            "name": "web 10s clip, one at a time: median latency",
            "value": sorted(through)[len(through) // 2],
            "unit": "s",
            "baseline": sorted(direct)[len(direct) // 2],
            "baseline_name": "DetectorClient.scan",
            "goal": "<= 1.15x",
        },
        {
            "name": f"web {UPLOADS} concurrent 10s clips: throughput",
            "value": gateway_rate,
            "unit": "clips/s",
            "baseline": direct_rate,
            "baseline_name": f"client on {CONCURRENCY} threads",
            "goal": ">= 0.85x",
        },
        {
            "name": f"web {UPLOADS} concurrent clips, {STALLED} stalled clients",
            "value": sorted(attacked)[len(attacked) // 2],
            "unit": "clips/s",
            "baseline": sorted(plain)[len(plain) // 2],
            "baseline_name": "same, no stalled clients",
            "goal": ">= 0.8x",
        },
        {
            "name": f"web peak RSS, {UPLOADS} concurrent 10s clips",
            "value": peak_kb / 1024,
            "unit": "MB",
            "baseline": before_kb / 1024,
            "baseline_name": "warm RSS after 1-at-a-time",
            "goal": "<= 1.5x (bounded)",
        },
    ]
