"""deepfake-rollout against a real dev server process: publish -> canary -> promote -> rollback
while client threads keep sending gRPC and REST requests, and the refusals that leave nothing
half-changed."""

from __future__ import annotations

import pathlib
import shutil
import time

import numpy as np
import pytest

from deepfake_client import contract
from deepfake_client.errors import DeepfakeError, InvalidInputError, ServerUnavailableError
from deepfake_client.transport.base import Target, make_transport
from export.modelconfig import load_config
from serving.cli import main as rollout_main
from serving.rollout import Rollout, RolloutError
from tests.serving.load import ThreadedLoad

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]


def make_repository(tmp_path: pathlib.Path, exported_version: pathlib.Path) -> pathlib.Path:
    repository = tmp_path / "models"
    Rollout(repository=repository).publish(exported_version)  # version 1, labelled stable
    return repository


def serve(start, repository: pathlib.Path, log_path: pathlib.Path, *extra: str):  # type: ignore[no-untyped-def]
    """A dev server over the repository's models.config, started as docker-compose.yml starts TF Serving."""
    return start(
        repository,
        repository / "models.config",
        log_path,
        "--allow_version_labels_for_unavailable_models=true",
        *extra,
    )


def publish_second_version(repository: pathlib.Path) -> int:
    from export.version import export_model
    from tests.conftest import tiny_keras_model

    return export_model(tiny_keras_model(seed=7), repository, backbone="tiny-test-2").version


class Load(ThreadedLoad):
    """Client threads scanning crops through the ``stable`` label over gRPC and REST until stopped."""

    def __init__(self, urls: list[str]) -> None:
        from deepfake_client import DetectorClient

        super().__init__(join_timeout_s=60)
        self.errors: list[str] = []
        self.versions: list[int] = []
        self.clients = [DetectorClient(url, label="stable", retries=0, timeout_s=30) for url in urls]
        for client in self.clients:
            self.spawn(self._run, client)

    def _run(self, client) -> None:  # type: ignore[no-untyped-def]
        crops = np.random.default_rng(0).integers(0, 256, size=(4, 64, 64, 3), dtype=np.uint8)
        while not self.stop.is_set():
            try:
                verdict = client.scan_crops(crops)
                self.versions.append(int(verdict.model_version))
            except DeepfakeError as err:
                self.errors.append(f"{type(err).__name__}: {err}")
            time.sleep(0.01)

    def close(self) -> None:
        for client in self.clients:
            client.close()


def test_full_rollout_under_load_fails_no_request(tmp_path, exported_version, devserver_launcher) -> None:
    start, stop = devserver_launcher
    repository = make_repository(tmp_path, exported_version)
    server = serve(start, repository, tmp_path / "server.log")
    transport = make_transport(server.grpc_url)
    try:
        rollout = Rollout(repository=repository, servers=[transport], wait_timeout_s=60)
        second = publish_second_version(repository)
        assert second == 2
        assert load_config(repository / "models.config").model().versions == (1,)  # publish serves nothing
        with Load([server.grpc_url, server.rest_url]) as load:
            time.sleep(1.0)
            assert rollout.canary() == 2
            entry = rollout.entry()
            assert entry.versions == (1, 2) and dict(entry.labels) == {"stable": 1, "canary": 2}
            time.sleep(1.0)
            assert rollout.promote() == 2
            assert dict(rollout.entry().labels) == {"stable": 2}
            time.sleep(1.5)
            assert rollout.rollback() == 1
            assert dict(rollout.entry().labels) == {"stable": 1}
            time.sleep(1.5)
        assert load.errors == []
        assert len(load.versions) > 20
        assert set(load.versions) <= {1, 2} and 2 in load.versions
        status = rollout.status()
        assert status["published"] == [1, 2] and status["labels"] == {"stable": 1}
    finally:
        transport.close()
        assert stop(server) == 0


def test_refusals_leave_the_config_as_it_was(tmp_path, exported_version, devserver_launcher) -> None:
    start, stop = devserver_launcher
    repository = make_repository(tmp_path, exported_version)
    config_path = repository / "models.config"
    server = serve(start, repository, tmp_path / "server.log")
    transport = make_transport(server.grpc_url)
    try:
        rollout = Rollout(repository=repository, servers=[transport], wait_timeout_s=20)
        original = config_path.read_text()

        # A version whose golden batch does not match what the server answers: not labelled.
        second = publish_second_version(repository)
        golden_path = repository / "deepfake_detector" / str(second) / "assets.extra/golden.npz"
        with np.load(golden_path) as data:
            golden = {k: data[k] for k in data.files}
        golden[contract.PROBABILITY_OUTPUT] = golden[contract.PROBABILITY_OUTPUT] + 0.25
        np.savez_compressed(golden_path, **golden)
        with pytest.raises(RolloutError, match="golden batch"):
            rollout.canary(second)
        assert config_path.read_text() == original
        assert (
            rollout_main(
                ["--repository", str(repository), "--server", server.grpc_url, "canary", str(second)]
            )
            == RolloutError.exit_code
        )

        # A version that never loads (corrupt variables): refused, config restored.
        broken = repository / "deepfake_detector" / "3"
        shutil.copytree(repository / "deepfake_detector" / "1", broken)
        (broken / "variables" / "variables.data-00000-of-00001").write_bytes(b"corrupt")
        with pytest.raises(DeepfakeError):
            rollout.canary(3)
        assert config_path.read_text() == original

        # Two rollouts at once: the second is refused.
        with rollout._lock(), pytest.raises(RolloutError, match="another rollout"):
            rollout.promote()

        # Nothing to promote.
        with pytest.raises(RolloutError, match="no canary"):
            rollout.promote()
    finally:
        transport.close()
        assert stop(server) == 0


def test_unreachable_server_and_bad_config(tmp_path, exported_version, capsys) -> None:
    repository = make_repository(tmp_path, exported_version)
    config_path = repository / "models.config"
    original = config_path.read_text()
    dead = "grpc://127.0.0.1:9"  # nothing listens on the discard port
    code = rollout_main(["--repository", str(repository), "--server", dead, "--timeout", "2", "canary", "1"])
    assert code == ServerUnavailableError.exit_code
    assert "deepfake-rollout: error (exit 4): " in capsys.readouterr().err
    assert config_path.read_text() == original

    config_path.write_text("model_config_list { config { name: 'x' base_path: }")  # hand-edited, broken
    code = rollout_main(["--repository", str(repository), "--server", dead, "promote"])
    assert code == InvalidInputError.exit_code
    assert "not a valid model config" in capsys.readouterr().err


def test_changes_take_effect_through_reload_not_polling(
    tmp_path, exported_version, devserver_launcher
) -> None:
    """With config polling off, the canary still loads: the rollout sent HandleReloadConfigRequest."""
    start, stop = devserver_launcher
    repository = make_repository(tmp_path, exported_version)
    # TF Serving: 0 = never re-read the config file
    server = serve(start, repository, tmp_path / "server.log", "--model_config_file_poll_wait_seconds=0")
    transport = make_transport(server.grpc_url)
    try:
        rollout = Rollout(repository=repository, servers=[transport], wait_timeout_s=30)
        second = publish_second_version(repository)
        assert rollout.canary(second) == second
        states = transport.status(Target())
        assert states[second] == "AVAILABLE"
        # A config TF Serving refuses (a label on a version that is not AVAILABLE) raises, and the
        # good config is sent again: the server keeps serving the canary.
        bad = rollout.config().with_model(rollout.entry().replace(labels={"stable": 1, "canary": 99}))
        with pytest.raises(DeepfakeError):
            transport.reload_config(bad.to_proto())
        transport.reload_config(rollout.config().to_proto())
        assert transport.status(Target())[second] == "AVAILABLE"
    finally:
        transport.close()
        assert stop(server) == 0


def test_one_rollout_drives_every_replica(replicas) -> None:  # type: ignore[no-untyped-def]
    """Two servers read one repository: the canary is labelled only when both report it AVAILABLE,
    and both follow the promotion."""
    repository, _, transports = replicas
    rollout = Rollout(repository=repository, servers=transports, wait_timeout_s=60)
    second = publish_second_version(repository)
    rollout.canary(second)
    assert all(t.status(Target())[second] == "AVAILABLE" for t in transports)
    rollout.promote()
    images = np.zeros((1, 64, 64, 3), np.uint8)
    for transport in transports:
        answer = transport.predict(Target(label="stable"), "serving_default", {"images": images})
        assert answer.version == second


def test_publishing_a_run_without_tensorflow_is_a_clear_error(tmp_path, monkeypatch) -> None:
    import sys

    run = tmp_path / "run"
    run.mkdir()
    (run / "model.keras").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "tensorflow", None)  # the fault: TensorFlow cannot be imported
    with pytest.raises(InvalidInputError, match="needs TensorFlow"):
        Rollout(repository=tmp_path / "models").publish(run)
    assert not (tmp_path / "models").exists()
