"""Start and stop a dev server process (for the demo, the benchmarks and the tests).

The dev server is started the way docker-compose.yml starts TF Serving (a model config file,
polling, labels allowed at start-up), on free ports, and is ready when the model has an
AVAILABLE version.
"""

from __future__ import annotations

import dataclasses
import os
import pathlib
import socket
import subprocess
import sys
import time
import urllib.request

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import ServerUnavailableError

ROOT = pathlib.Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclasses.dataclass
class DevServerProcess:
    """A running dev server process and where to reach it."""

    process: subprocess.Popen
    grpc_port: int
    rest_port: int
    config_path: pathlib.Path | None
    log_path: pathlib.Path
    repository: pathlib.Path | None = None

    @property
    def grpc_url(self) -> str:
        return f"grpc://127.0.0.1:{self.grpc_port}"

    @property
    def rest_url(self) -> str:
        return f"http://127.0.0.1:{self.rest_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def log(self) -> str:
        """The server's output so far."""
        return self.log_path.read_text(errors="replace")


def start_devserver(
    config_path: str | pathlib.Path | None,
    log_path: str | pathlib.Path,
    *extra: str,
    model: str = MODEL_NAME,
    labels_at_startup: bool = True,
    timeout_s: float = 120.0,
    repository: pathlib.Path | None = None,
    ports: tuple[int, int] | None = None,
) -> DevServerProcess:
    """Start ``python -m serving.devserver`` and wait until ``model`` has an AVAILABLE version.

    Args:
        config_path: the model config file, polled every second; ``None`` when ``extra`` names the
            model with ``--model_name`` and ``--model_base_path``.
        log_path: where the server's output goes.
        extra: more TF Serving flags (``--flag=value``).
        model: the model to wait for.
        labels_at_startup: pass ``--allow_version_labels_for_unavailable_models=true``, as
            docker-compose.yml does.
        timeout_s: how long to wait for an AVAILABLE version.
        repository: recorded on the result, for the caller's convenience.
        ports: the gRPC and REST ports (default: free ones), e.g. to restart a server where it was.

    Raises:
        ServerUnavailableError: the process exited or no version became AVAILABLE in time.
    """
    log_path = pathlib.Path(log_path)
    grpc_port, rest_port = ports or (free_port(), free_port())
    command = [
        sys.executable,
        "-m",
        "serving.devserver",
        f"--port={grpc_port}",
        f"--rest_api_port={rest_port}",
        "--host=127.0.0.1",  # the dev server binds 0.0.0.0 by default, as TF Serving; tests stay local
        "--file_system_poll_wait_seconds=1",
    ]
    if config_path is not None:
        config_path = pathlib.Path(config_path)
        command += [f"--model_config_file={config_path}", "--model_config_file_poll_wait_seconds=1"]
    if labels_at_startup:
        command.append("--allow_version_labels_for_unavailable_models=true")
    command += extra
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env)
    server = DevServerProcess(process, grpc_port, rest_port, config_path, log_path, repository)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerUnavailableError(
                f"the dev server exited with {process.returncode}: {server.log()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{server.rest_url}/v1/models/{model}", timeout=2) as reply:
                if b'"AVAILABLE"' in reply.read():
                    return server
        except OSError:
            pass
        time.sleep(0.3)
    stop_devserver(server)
    raise ServerUnavailableError(
        f"the dev server did not serve {model} within {timeout_s:g} s: {server.log()[-2000:]}"
    )


def stop_devserver(server: DevServerProcess, timeout_s: float = 30.0) -> int:
    """SIGTERM, wait for the graceful exit (kill after ``timeout_s``); the exit code."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(10)
    return server.process.returncode
