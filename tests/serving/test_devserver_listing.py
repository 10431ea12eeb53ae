"""The dev server's file-system poll: a listing that fails changes nothing, as in TF Serving."""

from __future__ import annotations

import pathlib
import time

import pytest

from deepfake_client._proto import tfs_pb2
from serving.devserver.manager import ModelManager


def config(base: pathlib.Path) -> tfs_pb2.ModelServerConfig:
    server = tfs_pb2.ModelServerConfig()
    model = server.model_config_list.config.add()
    model.name, model.base_path, model.model_platform = "m", str(base), "tensorflow"
    return server


def states(manager: ModelManager) -> dict[int, int]:
    return {s.version: s.state for s in manager.model_status("m")}


def test_a_failed_listing_keeps_the_served_versions(tmp_path: pathlib.Path, monkeypatch, caplog) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "m" / "1").mkdir(parents=True)
    manager = ModelManager(loader=lambda name, version, path: object())  # a servable stand-in
    manager.reload_config(config(tmp_path / "m"))
    deadline = time.monotonic() + 10
    while states(manager) != {1: tfs_pb2.ModelVersionStatus.AVAILABLE} and time.monotonic() < deadline:
        time.sleep(0.02)
    assert states(manager) == {1: tfs_pb2.ModelVersionStatus.AVAILABLE}

    def unreadable(self):  # type: ignore[no-untyped-def]
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(pathlib.Path, "iterdir", unreadable)
    manager.poll_file_system()  # an empty listing would have unloaded version 1
    assert states(manager) == {1: tfs_pb2.ModelVersionStatus.AVAILABLE}
    assert "cannot list the versions of m" in caplog.text


@pytest.mark.parametrize("name", ["²", "٣", "v2", ".incoming-3"])
def test_only_ascii_integer_names_are_versions(tmp_path: pathlib.Path, name: str) -> None:
    from export.publish import list_versions, version_dirs

    (tmp_path / name).mkdir()
    (tmp_path / "4").mkdir()
    assert version_dirs(tmp_path) == {4: tmp_path / "4"} and list_versions(tmp_path / "missing") == []
