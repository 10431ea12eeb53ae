"""Gateway fixtures: ``deepfake-web`` started as a real subprocess (uvicorn) on a free port."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT, free_port


class GatewayProcess:
    """A running gateway: ``url``, ``upload_dir``, ``process``; RSS and peak RSS from /proc."""

    def __init__(
        self, process: subprocess.Popen, port: int, upload_dir: pathlib.Path, log_path: pathlib.Path
    ):
        self.process = process
        self.url = f"http://127.0.0.1:{port}"
        self.port = port
        self.upload_dir = upload_dir
        self.log_path = log_path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def _status_kb(self, key: str) -> int:
        for line in pathlib.Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
        raise KeyError(key)

    def rss_kb(self) -> int:
        return self._status_kb("VmRSS")

    def peak_rss_kb(self) -> int:
        return self._status_kb("VmHWM")

    def uploads_left(self) -> list[str]:
        return sorted(p.name for p in self.upload_dir.iterdir()) if self.upload_dir.exists() else []


def start_gateway(
    server_url: str, root: pathlib.Path, *extra: str, timeout_s: float = 60.0
) -> GatewayProcess:
    """Start ``python -m deepfake_client.web.cli`` against ``server_url``; wait until it answers."""
    port = free_port()
    upload_dir = root / "uploads"
    log_path = root / "gateway.log"
    command = [
        sys.executable,
        "-m",
        "deepfake_client.web.cli",
        f"--server={server_url}",
        f"--port={port}",
        f"--upload-dir={upload_dir}",
        *extra,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=dict(os.environ, PYTHONUNBUFFERED="1"),
        )
    gateway = GatewayProcess(process, port, upload_dir, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the gateway exited with {process.returncode}:\n{gateway.log()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{gateway.url}/openapi.json", timeout=2) as reply:
                if reply.status == 200:
                    return gateway
        except OSError:
            time.sleep(0.2)
    stop_gateway(gateway)
    raise RuntimeError(f"the gateway did not answer within {timeout_s} s:\n{gateway.log()[-3000:]}")


def stop_gateway(gateway: GatewayProcess) -> int:
    if gateway.process.poll() is None:
        gateway.process.terminate()
        try:
            gateway.process.wait(30)
        except subprocess.TimeoutExpired:
            gateway.process.kill()
            gateway.process.wait(10)
    return gateway.process.returncode


MAX_UPLOAD_MB = 8


@pytest.fixture(scope="session")
def gateway(devserver, tmp_path_factory: pytest.TempPathFactory):
    """A gateway in front of the session dev server (label stable = version 1), 8 MB upload limit."""
    process = start_gateway(
        devserver.grpc_url,
        tmp_path_factory.mktemp("gateway"),
        f"--max-upload-mb={MAX_UPLOAD_MB}",
        "--concurrency=2",
        "--max-waiting=16",
    )
    yield process
    stop_gateway(process)


@pytest.fixture(scope="session")
def dead_gateway(tmp_path_factory: pytest.TempPathFactory):
    """A gateway whose model server is down (nothing listens on its port); one scan at a time, no queue."""
    process = start_gateway(
        f"grpc://127.0.0.1:{free_port()}",
        tmp_path_factory.mktemp("dead-gateway"),
        "--retries=0",
        "--timeout=5",
        "--concurrency=1",
        "--max-waiting=0",
    )
    yield process
    stop_gateway(process)
