"""Gateway fixtures: ``deepfake-web`` started as a real subprocess (uvicorn) on a free port, an
in-process gateway (a real uvicorn server on a thread, for fault injection), a two-person clip,
and stalled uploads sent from their own loopback addresses (127.0.0.x, so per-client caps apply
to each as to a different machine)."""

from __future__ import annotations

import os
import pathlib
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

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
    server_url: str,
    root: pathlib.Path,
    *extra: str,
    timeout_s: float = 60.0,
    tls: tuple[pathlib.Path, pathlib.Path, pathlib.Path] | None = None,
) -> GatewayProcess:
    """Start ``python -m deepfake_client.web.cli`` against ``server_url``; wait until it answers.

    ``tls`` (CA, client certificate, client key) waits for it over HTTPS with that certificate.
    """
    context = None
    if tls:
        import ssl

        context = ssl.create_default_context(cafile=tls[0])
        context.load_cert_chain(tls[1], tls[2])
    port = free_port()
    root.mkdir(parents=True, exist_ok=True)
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
            url = gateway.url.replace("http://", "https://") if tls else gateway.url
            with urllib.request.urlopen(f"{url}/openapi.json", timeout=2, context=context) as reply:
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
SCREENSHOTS: list[pathlib.Path] = []  # saved by the browser test, listed at the end of the run


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if SCREENSHOTS:
        terminalreporter.section("deepfake-web screenshots")
        for path in SCREENSHOTS:
            terminalreporter.write_line(str(path))


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
    """A gateway whose model server is down (nothing listens on its port); one upload received at a
    time, one scan at a time, no queue."""
    process = start_gateway(
        f"grpc://127.0.0.1:{free_port()}",
        tmp_path_factory.mktemp("dead-gateway"),
        "--retry-for=0",
        "--timeout=5",
        "--concurrency=1",
        "--max-waiting=0",
        "--max-receiving=1",
    )
    yield process
    stop_gateway(process)


def stall_upload(port: int, source: str = "127.0.0.1", *, length: int = 1_000_000) -> socket.socket:
    """A connection from ``source`` that sends the headers and a first chunk of an upload, then nothing."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    sock.sendall(
        b"POST /v1/scan HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        b"Content-Length: %d\r\n\r\n"
        % length
        + b'--b\r\nContent-Disposition: form-data; name="file"; filename="stalled.mp4"\r\n\r\n'
        + b"\0" * 4096
    )
    return sock


def read_reply(sock: socket.socket) -> bytes:
    """Everything the gateway sends until it closes the connection (b"" if it closes without a word)."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def metric(text: str, name: str, **labels: str) -> float:
    """One sample's value from Prometheus exposition text (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


@contextmanager
def serve_in_process(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """Run ``app`` on a real uvicorn server on a thread of this process; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture(scope="session")
def two_person_clip(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """A 2 s, 12 fps, 640x360 H.264 clip of two faces walking towards each other."""
    from tests.client.test_follow import frames_with
    from training.synthetic import write_video

    frames = frames_with([[(150 + 3 * i, 180, 140), (490 - 3 * i, 190, 120)] for i in range(24)])
    path = tmp_path_factory.mktemp("two-people") / "two people.mp4"
    write_video(path, frames, fps=12)
    return path
