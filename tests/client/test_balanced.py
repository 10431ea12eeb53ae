"""The balanced transport against two real dev servers (replicas over one repository): calls spread
over both, a replica killed mid-run is ejected and its calls answered by the other, gRPC's own
round robin for a resolver target (``ipv4:``/``dns:///``), and the refusals of bad server lists."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import numpy as np
import pytest

from deepfake_client import DetectorClient
from deepfake_client.errors import InvalidInputError, ServerUnavailableError
from deepfake_client.transport import Target, make_transport
from deepfake_client.transport.balanced import BalancedTransport
from serving.devserver.launcher import free_port
from tests.conftest import ROOT

CROPS = np.random.default_rng(0).integers(0, 256, (3, 64, 64, 3), dtype=np.uint8)


def predict_count(server) -> float:  # type: ignore[no-untyped-def]
    """The server's own count of Predict calls (TF Serving's request_count metric)."""
    with urllib.request.urlopen(f"{server.rest_url}/monitoring/prometheus/metrics", timeout=5) as reply:
        text = reply.read().decode()
    found = re.findall(r'^:tensorflow:serving:request_count\{[^}]*status="OK"[^}]*\} (\S+)$', text, re.M)
    return sum(float(x) for x in found)


@pytest.fixture(scope="module")
def _servers(tmp_path_factory, exported_version, devserver_launcher):  # type: ignore[no-untyped-def]
    from tests.serving.test_rollout import make_repository, serve

    start, stop = devserver_launcher
    root = tmp_path_factory.mktemp("replicas")
    repository = make_repository(root, exported_version)
    monitoring = f"--monitoring_config_file={ROOT / 'serving' / 'monitoring.config'}"

    def launch(i: int):  # type: ignore[no-untyped-def]
        return serve(start, repository, root / f"server{i}-{time.time()}.log", monitoring)

    servers = [launch(i) for i in range(2)]
    yield servers, launch
    for server in servers:
        stop(server)


@pytest.fixture
def two_replicas(_servers):  # type: ignore[no-untyped-def]
    """Two dev servers (version 1, stable) over one repository, with TF Serving's metrics on; one a
    test killed is started again for the next."""
    servers, launch = _servers
    for i, server in enumerate(servers):
        if server.process.poll() is not None:
            servers[i] = launch(i)
    return list(servers)


def scan_in_threads(url: str, seconds: float, during=None) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """Scan crops from 3 threads for ``seconds`` (``during()`` runs half way); (scans, errors)."""
    done, errors, stop = [0], [], threading.Event()
    lock = threading.Lock()

    def run() -> None:
        # retries=0: every failure the balanced transport lets through reaches the test
        with DetectorClient(url, retries=0, retry_for_s=0, timeout_s=20) as client:
            while not stop.is_set():
                try:
                    verdict = client.scan_crops(CROPS)
                    assert len(verdict.faces) == 3
                    with lock:
                        done[0] += 1
                except Exception as err:  # noqa: BLE001 - the test reports every failure
                    errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(seconds / 2)
    if during:
        during()
    time.sleep(seconds / 2)
    stop.set()
    for t in threads:
        t.join(60)
    return done[0], errors


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_calls_spread_over_replicas_and_a_killed_one_is_ejected(two_replicas, protocol) -> None:  # type: ignore[no-untyped-def]
    first, second = two_replicas
    url = ",".join(s.grpc_url if protocol == "grpc" else s.rest_url for s in two_replicas)
    before = [predict_count(s) for s in two_replicas]
    scans, errors = scan_in_threads(url, 3.0)
    assert not errors and scans >= 6
    spread = [predict_count(s) - b for s, b in zip(two_replicas, before, strict=True)]
    assert min(spread) >= 0.3 * max(spread), spread  # round robin: both replicas did their share

    after_kill: list[float] = []

    def kill() -> None:
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(10)
        after_kill.append(predict_count(second))

    scans, errors = scan_in_threads(url, 4.0, during=kill)
    assert not errors, errors[:3]  # every call the dead replica got was answered by the other
    assert predict_count(second) - after_kill[0] >= 3  # and the survivor went on answering


@pytest.mark.slow
def test_grpc_round_robin_over_a_resolver_target(two_replicas) -> None:  # type: ignore[no-untyped-def]
    ports = ",".join(f"127.0.0.1:{s.grpc_port}" for s in two_replicas)
    before = [predict_count(s) for s in two_replicas]
    with DetectorClient(f"ipv4:{ports}", retries=0, retry_for_s=0) as client:
        for _ in range(8):
            client.scan_crops(CROPS)
    spread = [predict_count(s) - b for s, b in zip(two_replicas, before, strict=True)]
    assert min(spread) >= 2, spread  # gRPC's round_robin, not pick_first
    two_replicas[0].process.send_signal(signal.SIGKILL)
    two_replicas[0].process.wait(10)
    with DetectorClient(f"ipv4:{ports}", timeout_s=20, retry_for_s=10) as client:
        assert all(len(client.scan_crops(CROPS).faces) == 3 for _ in range(6))
    # dns:/// resolves a name to every address (a headless service); localhost has one here
    with DetectorClient(f"dns:///localhost:{two_replicas[1].grpc_port}", retries=0) as client:
        assert client.info().version == 1


def test_every_replica_down_is_one_unavailable_error() -> None:
    urls = f"grpc://127.0.0.1:{free_port()},grpc://127.0.0.1:{free_port()}"
    now = [0.0]
    transport = make_transport(urls)
    assert isinstance(transport, BalancedTransport)
    transport._clock = lambda: now[0]  # the ejection clock only
    with transport:
        with pytest.raises(ServerUnavailableError):
            transport.status(Target(), timeout_s=2)
        assert [r.ejected_until for r in transport.replicas] == [2.0, 2.0]  # each tried once, ejected
        with pytest.raises(ServerUnavailableError):
            transport.status(Target(), timeout_s=2)
    assert [r.ejected_until for r in transport.replicas] == [4.0, 4.0]  # doubled: failed twice in a row


@pytest.mark.parametrize(
    "server, message",
    [
        ("grpc://a:8500,http://b:8501", "mixes gRPC and REST"),
        ("grpc://a:8500,grpc://a:8500", "names a server twice"),
        ("dns:///tfserving-pods", "needs a port"),
        ("grpc://a:8500,ftp://b", "unsupported server URL"),
    ],
)
def test_bad_server_lists_are_refused(server: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        make_transport(server)
    result = subprocess.run(
        [sys.executable, "-m", "deepfake_client.cli", "x.mp4", "--server", server],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
