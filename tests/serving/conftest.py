"""Fixtures for the dev server tests: real SavedModels and an in-process dev server."""

from __future__ import annotations

import pathlib
import shutil

import pytest


@pytest.fixture(scope="session")
def half_plus_two(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """TF Serving's test model rebuilt with tf.Module: y = 0.5 x + 2 (plus `multi` and `strings`)."""
    from serving.devserver.testmodels import write_half_plus_two

    return write_half_plus_two(tmp_path_factory.mktemp("hpt") / "model")


@pytest.fixture(scope="session")
def half_plus_three(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """The same model with y = 0.5 x + 3 (TF Serving's half_plus_three)."""
    from serving.devserver.testmodels import write_half_plus_two

    return write_half_plus_two(tmp_path_factory.mktemp("hp3") / "model", plus=3.0)


@pytest.fixture(scope="module")
def hpt_server(tmp_path_factory: pytest.TempPathFactory, half_plus_two: pathlib.Path):
    """An in-process dev server (gRPC and REST on free ports) serving half_plus_two version 123."""
    from serving.devserver.server import DevServer, ServerOptions

    repository = tmp_path_factory.mktemp("hpt_repo")
    shutil.copytree(half_plus_two, repository / "half_plus_two" / "123")
    config = repository / "models.config"
    config.write_text(
        'model_config_list { config { name: "half_plus_two" base_path: "%s"'
        ' model_platform: "tensorflow" } }\n' % (repository / "half_plus_two")
    )
    server = DevServer(
        ServerOptions(
            port=0,
            rest_api_port=0,
            model_config_file=str(config),
            metrics_path="/monitoring/prometheus/metrics",
            max_request_bytes=1 << 20,
        )
    )
    server.start(rest=True)
    server.repository_base = repository / "half_plus_two"
    yield server
    server.stop(grace_s=5)


@pytest.fixture(scope="session")
def probe_versions(tmp_path_factory: pytest.TempPathFactory) -> dict[int, pathlib.Path]:
    """The probe model (outputs reveal the batch it ran in and the version) as versions 1 and 2."""
    from serving.devserver.testmodels import write_probe_model

    root = tmp_path_factory.mktemp("probe")
    return {v: write_probe_model(root / str(v), version=v) for v in (1, 2)}


@pytest.fixture
def serve_inprocess(tmp_path: pathlib.Path):
    """``serve(name, {version: dir}, versions=None, batching=None)``: an in-process dev server (gRPC
    and REST on free ports) over a fresh repository; stopped at the end of the test."""
    from serving.devserver.server import DevServer, ServerOptions

    servers = []

    def serve(name: str, versions: dict[int, pathlib.Path], *, serve_versions=None, batching=None):
        base = tmp_path / "models" / name
        for number, source in versions.items():
            shutil.copytree(source, base / str(number))
        policy = " ".join(f"versions: {v}" for v in (serve_versions or sorted(versions)))
        config = tmp_path / "models" / "models.config"
        config.write_text(
            f'model_config_list {{ config {{ name: "{name}" base_path: "{base}" model_platform: '
            f'"tensorflow" model_version_policy {{ specific {{ {policy} }} }} }} }}\n'
        )
        server = DevServer(
            ServerOptions(port=0, rest_api_port=0, model_config_file=str(config), batching=batching)
        )
        server.start(rest=True)
        server.base_path = base
        servers.append(server)
        return server

    yield serve
    for server in servers:
        server.stop(grace_s=5)


@pytest.fixture
def replicas(tmp_path, exported_version, devserver_launcher):  # type: ignore[no-untyped-def]
    """``(repository, servers, transports)``: version 1 published and stable, read by two dev servers
    (as Kubernetes replicas on shared storage) that take reloads only (no config polling)."""
    from deepfake_client.transport.base import make_transport
    from tests.serving.test_rollout import make_repository, serve

    start, stop = devserver_launcher
    repository = make_repository(tmp_path, exported_version)
    servers = [
        serve(start, repository, tmp_path / f"server{i}.log", "--model_config_file_poll_wait_seconds=0")
        for i in range(2)
    ]
    transports = [make_transport(s.grpc_url) for s in servers]
    yield repository, servers, transports
    for transport in transports:
        transport.close()
    for server in servers:
        stop(server)
