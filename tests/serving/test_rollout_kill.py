"""SIGKILL at random points of publish and of rollout steps: the repository's history, config and
version folders still agree, and the next command repairs or refuses in one line."""

from __future__ import annotations

import os
import pathlib
import random
import signal
import subprocess
import sys
import time

import pytest

from deepfake_client.transport.base import Target, make_transport
from export import history
from export.modelconfig import load_config
from export.publish import INCOMING_PREFIX, check_version_dir, list_versions
from tests.export.test_publish import fake_saved_model
from tests.serving.test_rollout import make_repository, serve

pytestmark = [pytest.mark.slow]

ROOT = pathlib.Path(__file__).resolve().parents[2]


def rollout(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "serving.cli", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )


def kill_after(process: subprocess.Popen, delay_s: float) -> bool:
    """SIGKILL ``process`` after ``delay_s`` unless it ended first; whether it was killed."""
    try:
        process.wait(timeout=delay_s)
        return False
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGKILL)
        process.wait()
        return True


def assert_consistent(repository: pathlib.Path) -> None:
    """Numeric folders are complete; after the reconcile every command starts with, the history's last
    record is the config, and every label points at a served, published version."""
    base = repository / "deepfake_detector"
    for version in list_versions(base):
        check_version_dir(base / str(version))
    config_path = repository / "models.config"
    with history.state_lock_waiting(repository, timeout_s=5):
        records = history.reconcile(repository, config_path, lambda line: None)
    assert records and records[-1].config_sha256 == history.sha256_text(config_path.read_text())
    entry = load_config(config_path).model()
    published = set(list_versions(base))
    assert set(entry.versions) <= published
    assert set(entry.labels.values()) <= set(entry.versions)
    assert history.stable_stack(records, "deepfake_detector")[-1] == entry.labels["stable"]


def test_publish_killed_anywhere_leaves_a_consistent_repository(tmp_path: pathlib.Path) -> None:
    source = tmp_path / "export"
    fake_saved_model(source, payload=os.urandom(24 << 20))  # copying takes a while: kills land inside it
    repository = tmp_path / "models"
    rng = random.Random(1)
    began = time.monotonic()
    assert rollout("publish", str(source), "--repository", str(tmp_path / "timing")).wait(120) == 0
    whole_s = time.monotonic() - began  # kills are spread over one whole publish
    killed = 0
    for run in range(24):
        if run == 3:  # the first publish's crash window is the one that lost state before
            (repository / "models.config").unlink(missing_ok=True)
        process = rollout("publish", str(source), "--repository", str(repository))
        killed += kill_after(process, rng.uniform(0.3, 1.0) * whole_s)
        if (repository / "models.config").exists():  # else the first publish died before its config
            assert_consistent(repository)
    assert killed >= 10, f"only {killed} of 24 runs were killed mid-way"
    # The next publish repairs what a kill left (config written back, staging folders removed).
    done = rollout("publish", str(source), "--repository", str(repository))
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert_consistent(repository)
    assert not list((repository / "deepfake_detector").glob(f"{INCOMING_PREFIX}*"))


@pytest.mark.needs_tf
def test_rollout_steps_killed_anywhere_leave_history_config_and_server_agreeing(
    tmp_path, exported_version, devserver_launcher
) -> None:
    start, stop = devserver_launcher
    repository = make_repository(tmp_path, exported_version)
    server = serve(start, repository, tmp_path / "server.log")
    transport = make_transport(server.grpc_url)
    rng = random.Random(2)
    steps = [["canary"], ["promote"], ["rollback"], ["abort"], ["canary", "--force"]]
    outcomes: dict[str, int] = {}
    whole_s: dict[str, float] = {}  # how long each step takes when it is not killed
    try:
        for _ in range(2):
            assert rollout("publish", str(exported_version), "--repository", str(repository)).wait(60) == 0
        for run in range(20):
            step = steps[run % len(steps)]
            process = rollout(
                *step, "--repository", str(repository), "--server", server.grpc_url, "--timeout", "30"
            )
            began = time.monotonic()
            # The first run of a step measures it; later ones are killed somewhere inside it.
            killed = kill_after(
                process, rng.uniform(0.2, 1.0) * whole_s[step[0]] if step[0] in whole_s else 120
            )
            if not killed and step[0] not in whole_s:
                whole_s[step[0]] = time.monotonic() - began
            if not killed:
                err = process.stderr.read() if process.stderr else ""
                # A refusal (nothing to promote, no earlier stable, ...) is one line with its exit code.
                assert process.returncode == 0 or (
                    process.returncode in (2, 3, 4, 5) and err.count("\n") == 1
                ), err
            outcome = f"{step[0]} {'killed' if killed else process.returncode}"
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            assert_consistent(repository)
            # What the server serves under stable is what the config says (a reload or a poll away).
            stable = load_config(repository / "models.config").model().labels["stable"]
            deadline = time.monotonic() + 30
            while True:
                try:
                    answered = transport.metadata(Target(label="stable")).version
                except Exception:  # noqa: BLE001 - a label mid-move: ask again
                    answered = None
                if answered == stable or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert answered == stable
        assert sum(v for k, v in outcomes.items() if k.endswith("killed")) >= 6, outcomes
    finally:
        transport.close()
        assert stop(server) == 0
    print("kill outcomes:", outcomes)
