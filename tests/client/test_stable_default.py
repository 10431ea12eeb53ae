"""Stable by default: a client that names no label scores with ``stable``, never with a canary."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from fakeserver import FakeServing, Model, Version

from deepfake_client import DetectorClient
from deepfake_client.cli import main as scan_main
from deepfake_client.errors import NotFoundError


@pytest.fixture(params=["grpc", "rest"])
def transport(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _serve(labels: dict[str, int]) -> FakeServing:
    return FakeServing(Model(versions={1: Version(64), 2: Version(64), 3: Version(64)}, labels=labels))


def _url(server: FakeServing, transport: str) -> str:
    return server.grpc_url if transport == "grpc" else server.rest_url


def test_no_label_means_stable_not_the_newer_canary(transport: str, face_image: np.ndarray) -> None:
    server = _serve({"stable": 1, "canary": 3})
    try:
        with DetectorClient(_url(server, transport)) as client:
            verdicts = [client.scan_image(face_image) for _ in range(3)]
        assert {v.model_version for v in verdicts} == {1}
        assert {version for _, version in server.model.calls} == {1}
        with DetectorClient(_url(server, transport), label=None) as client:  # the old behaviour, asked for
            assert client.scan_image(face_image).model_version == 3
    finally:
        server.stop()


def test_without_a_stable_label_the_latest_answers_with_one_warning(
    transport: str, face_image: np.ndarray, caplog: pytest.LogCaptureFixture
) -> None:
    server = _serve({})
    try:
        with (
            caplog.at_level(logging.WARNING, "deepfake_client"),
            DetectorClient(_url(server, transport)) as client,
        ):
            versions = [client.scan_image(face_image).model_version for _ in range(3)]
        assert versions == [3, 3, 3]
        warnings = [r for r in caplog.records if "no label 'stable'" in r.getMessage()]
        assert len(warnings) == 1, [r.getMessage() for r in caplog.records]
    finally:
        server.stop()


def test_without_stable_a_latest_canary_is_refused(transport: str, face_image: np.ndarray) -> None:
    server = _serve({"canary": 3})
    try:
        with DetectorClient(_url(server, transport)) as client, pytest.raises(NotFoundError, match="canary"):
            client.scan_image(face_image)
        assert [c for c in server.model.calls if c[0] != "model_info"] == []  # no face scored by the canary
    finally:
        server.stop()


def test_a_stable_label_that_appears_is_followed(face_image: np.ndarray, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import deepfake_client.client as client_module

    server = _serve({})
    try:
        with DetectorClient(server.grpc_url) as client:
            assert client.scan_image(face_image).model_version == 3
            server.model.labels["stable"] = 2
            monkeypatch.setattr(client_module, "DEFAULT_RESOLVE_TTL_S", 0.0)
            client._latest_until = 0.0  # the fallback's lifetime is over
            assert client.scan_image(face_image).model_version == 2
    finally:
        server.stop()


def test_scan_cli_stable_by_default_and_latest_on_request(tmp_path, capsys, face_image: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    import cv2
    import orjson

    path = tmp_path / "face.png"
    cv2.imwrite(str(path), cv2.cvtColor(face_image, cv2.COLOR_RGB2BGR))
    server = _serve({"stable": 1, "canary": 3})
    try:
        assert scan_main([str(path), "--server", server.grpc_url, "--json"]) == 0
        assert orjson.loads(capsys.readouterr().out.splitlines()[0])["model_version"] == 1
        assert scan_main([str(path), "--server", server.grpc_url, "--json", "--latest"]) == 0
        assert orjson.loads(capsys.readouterr().out.splitlines()[0])["model_version"] == 3
        assert scan_main([str(path), "--server", server.grpc_url, "--json", "--version", "2"]) == 0
        assert orjson.loads(capsys.readouterr().out.splitlines()[0])["model_version"] == 2
    finally:
        server.stop()


def test_gateway_targets_stable_unless_told_otherwise(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from deepfake_client.web.cli import build_parser, target_label

    monkeypatch.delenv("DEEPFAKE_LABEL", raising=False)
    parse = build_parser().parse_args
    assert target_label(parse([])) == "stable"
    assert target_label(parse(["--latest"])) is None
    assert target_label(parse(["--label", ""])) is None
    assert target_label(parse(["--label", "canary"])) == "canary"
    assert target_label(parse(["--version", "3"])) is None
    with pytest.raises(SystemExit):
        parse(["--latest", "--version", "3"])
