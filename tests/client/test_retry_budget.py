"""Riding out a server restart: the retry budget in seconds, against real dev server processes.

The policy alone (a fake clock, so the figures are exact), then a real ``deepfake-devserver`` that
comes up 8 s after the scans start (gRPC and REST), and one killed with SIGKILL in the middle of a
folder scan and started again on the same ports: every file still gets a verdict.
"""

from __future__ import annotations

import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import orjson
import pytest

from deepfake_client import DetectorClient
from deepfake_client.errors import DeadlineExceededError, InvalidInputError, ServerUnavailableError
from deepfake_client.transport.base import DEFAULT_RETRY_FOR_S, RetryPolicy
from serving.devserver.launcher import DevServerProcess, start_devserver, stop_devserver


class Clock:
    """A fake monotonic clock that ``sleep`` moves on."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _policy(clock: Clock, retry_for_s: float, **options: object) -> RetryPolicy:
    return RetryPolicy(
        retry_for_s, rng=random.Random(0), sleep=clock.sleep, clock=lambda: clock.now, **options
    )  # type: ignore[arg-type]


def test_an_outage_is_ridden_out_for_the_budget_then_fails(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    policy = _policy(clock, 10.0)
    waits: list[float] = []

    def down(wait_s: float) -> None:
        waits.append(wait_s)
        clock.now += 0.05  # each try costs a little
        raise ServerUnavailableError("connection refused")

    with caplog.at_level("WARNING", logger="deepfake_client"):
        with pytest.raises(ServerUnavailableError, match="gave up after 10 s of retries"):
            policy.call(down)
    assert [r.getMessage() for r in caplog.records] == ["connection refused; retrying for up to 10 s"]
    assert 9.9 <= clock.now <= 10.2  # the budget, not 3 retries and 0.8 s
    assert len(waits) > 10 and max(clock.sleeps) <= 1.0  # polled at least once a second
    assert waits[0] == 0.0 and 9.0 < waits[1] <= 10.0  # then each try may wait what is left
    assert waits[1:] == sorted(waits[1:], reverse=True)
    # the outage is not over: the next call gets one try, not another budget
    tries = len(waits)
    with pytest.raises(ServerUnavailableError):
        policy.call(down)
    assert len(waits) == tries + 1


def test_the_server_coming_back_ends_the_outage() -> None:
    clock = Clock()
    policy = _policy(clock, 30.0)
    up_at = 8.0

    def restarting(wait_s: float) -> str:
        clock.now += 0.01
        if clock.now < up_at:
            raise ServerUnavailableError("connection refused")
        return "verdict"

    assert policy.call(restarting) == "verdict"
    assert up_at <= clock.now < up_at + 1.1
    assert policy.remaining_s() == 30.0  # a new outage gets the whole budget again


def test_other_errors_and_timeouts_are_not_retried() -> None:
    clock = Clock()
    policy = _policy(clock, 30.0)
    for error in (InvalidInputError("bad"), DeadlineExceededError("slow")):
        calls: list[float] = []

        def failing(wait_s: float, error: Exception = error, calls: list[float] = calls) -> None:
            calls.append(wait_s)
            raise error

        with pytest.raises(type(error)):
            policy.call(failing)
        assert calls == [0.0]


def test_a_count_cap_and_a_zero_budget() -> None:
    clock = Clock()
    calls = []

    def down(wait_s: float) -> None:
        calls.append(wait_s)
        raise ServerUnavailableError("down")

    with pytest.raises(ServerUnavailableError):
        _policy(clock, 30.0, retries=2).call(down)
    assert len(calls) == 3
    calls.clear()
    with pytest.raises(ServerUnavailableError):
        _policy(clock, 0.0).call(down)
    assert calls == [0.0]
    with pytest.raises(InvalidInputError):
        RetryPolicy(-1.0)
    assert DetectorClient("grpc://127.0.0.1:9").retry.retry_for_s == DEFAULT_RETRY_FOR_S == 30.0


def test_scan_cli_has_retry_for_with_a_default_of_30() -> None:
    from deepfake_client.cli import build_parser

    args = build_parser().parse_args(["x.jpg"])
    assert args.retry_for == 30.0 and args.retries is None
    assert build_parser().parse_args(["x.jpg", "--retry-for", "5"]).retry_for == 5.0


# --- real servers ---------------------------------------------------------------------------


@pytest.fixture
def repository(tmp_path: pathlib.Path, exported_version: pathlib.Path) -> pathlib.Path:
    """A model repository with the exported version 1, labelled stable; returns its models.config."""
    base = tmp_path / "models" / "deepfake_detector"
    shutil.copytree(exported_version, base / "1")
    config = tmp_path / "models" / "models.config"
    config.write_text(
        f'model_config_list {{ config {{ name: "deepfake_detector" base_path: "{base}" '
        'model_platform: "tensorflow" model_version_policy { specific { versions: 1 } } '
        'version_labels { key: "stable" value: 1 } } }\n'
    )
    return config


def _fixed_ports() -> tuple[int, int]:
    """Two free ports below the ephemeral range, so that while no server holds them no outgoing
    connection takes one as its source port (nor connects to itself on it)."""
    low = int(pathlib.Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    rng = random.Random()
    ports: list[int] = []
    while len(ports) < 2:
        port = rng.randrange(20000, min(low, 32768))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        if port not in ports:
            ports.append(port)
    return ports[0], ports[1]


def _serve(config: pathlib.Path, ports: tuple[int, int], log: str) -> DevServerProcess:
    return start_devserver(config, config.parent.parent / log, "--max_num_load_retries=0", ports=ports)


@pytest.mark.slow
def test_scans_started_before_the_server_finish_when_it_comes_up_8_s_later(
    repository: pathlib.Path, tmp_path: pathlib.Path, face_image: np.ndarray
) -> None:
    image = tmp_path / "face.jpg"
    cv2.imwrite(str(image), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    ports = _fixed_ports()
    results: dict[str, object] = {}

    def scan(kind: str, url: str) -> None:
        try:
            # the server starts 8 s in and then needs its own start-up time (TensorFlow, the model)
            with DetectorClient(url, retry_for_s=120, timeout_s=10) as client:
                results[kind] = client.scan(image)
        except Exception as err:  # reported by the assertion below
            results[kind] = err

    threads = [
        threading.Thread(target=scan, args=("grpc", f"grpc://127.0.0.1:{ports[0]}")),
        threading.Thread(target=scan, args=("rest", f"http://127.0.0.1:{ports[1]}")),
    ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(8.0)
    assert all(thread.is_alive() for thread in threads)  # still waiting, not failed
    server = _serve(repository, ports, "late.log")
    try:
        for thread in threads:
            thread.join(120)
        up = time.monotonic() - started
        for kind in ("grpc", "rest"):
            verdict = results[kind]
            assert not isinstance(verdict, Exception), f"{kind}: {verdict!r}"
            assert verdict.label in ("FAKE", "REAL") and verdict.model_version == 1  # type: ignore[attr-defined]
        assert up >= 8.0
    finally:
        stop_devserver(server)


def _folder(tmp_path: pathlib.Path, face_image: np.ndarray, count: int) -> pathlib.Path:
    folder = tmp_path / "uploads"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        noisy = np.clip(face_image.astype(np.int16) + rng.integers(-8, 9, face_image.shape), 0, 255)
        cv2.imwrite(
            str(folder / f"face_{i:02d}.jpg"), cv2.cvtColor(noisy.astype(np.uint8), cv2.COLOR_RGB2BGR)
        )
    return folder


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["grpc", "rest"])
def test_kill_9_mid_folder_scan_and_restart_every_file_gets_a_verdict(
    scheme: str, repository: pathlib.Path, tmp_path: pathlib.Path, face_image: np.ndarray
) -> None:
    folder = _folder(tmp_path, face_image, 40)
    ports = _fixed_ports()
    server = _serve(repository, ports, "first.log")
    url = f"grpc://127.0.0.1:{ports[0]}" if scheme == "grpc" else f"http://127.0.0.1:{ports[1]}"
    scan = subprocess.Popen(
        [sys.executable, "-m", "deepfake_client.cli", str(folder), "--server", url, "--json", "--quiet"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )
    arrived: list[tuple[float, dict]] = []  # (when, row)

    def read() -> None:
        assert scan.stdout is not None
        for line in scan.stdout:
            arrived.append((time.monotonic(), orjson.loads(line)))

    reader = threading.Thread(target=read)
    reader.start()
    restarted = None
    try:
        deadline = time.monotonic() + 60
        while len(arrived) < 3 and scan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert 3 <= len(arrived) < 40, "the scan should be under way"
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        restarted = _serve(repository, ports, "second.log")
        back = time.monotonic()
        scan.wait(120)
        reader.join(10)
        assert scan.returncode == 0, scan.stderr.read().decode() if scan.stderr else ""
        rows = [row for _, row in arrived]
        assert sorted(pathlib.Path(r["source"]).name for r in rows) == sorted(
            p.name for p in folder.iterdir()
        )
        assert all(r["label"] in ("FAKE", "REAL") for r in rows)
        assert any(when >= back for when, _ in arrived)  # files waited for the restarted server
    finally:
        if scan.poll() is None:
            scan.kill()
        reader.join(10)
        if restarted is not None:
            stop_devserver(restarted)
        elif server.process.poll() is None:
            stop_devserver(server)
