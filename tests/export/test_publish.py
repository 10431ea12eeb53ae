"""Atomic publishing: a crash at any point leaves no incomplete numeric version directory."""

from __future__ import annotations

import errno
import multiprocessing
import os
import pathlib

import pytest

from deepfake_client.errors import InvalidInputError, NotFoundError
from export import publish
from export.publish import PublishError, copy_saved_model, list_versions, publish_version


def fake_saved_model(path: pathlib.Path, payload: bytes = b"x" * 1000) -> None:
    (path / "variables").mkdir(parents=True, exist_ok=True)
    (path / "saved_model.pb").write_bytes(payload)
    (path / "variables" / "variables.index").write_bytes(b"index")
    (path / "variables" / "variables.data-00000-of-00001").write_bytes(payload)


def numeric_dirs_are_complete(base: pathlib.Path) -> bool:
    for version in list_versions(base):
        publish.check_version_dir(base / str(version))
    return True


def test_versions_count_up(tmp_path: pathlib.Path) -> None:
    assert publish_version(tmp_path, lambda d, v: fake_saved_model(d)).name == "1"
    assert publish_version(tmp_path, lambda d, v: fake_saved_model(d)).name == "2"
    assert publish_version(tmp_path, lambda d, v: fake_saved_model(d), version=7).name == "7"
    assert publish_version(tmp_path, lambda d, v: fake_saved_model(d)).name == "8"
    assert list_versions(tmp_path / "deepfake_detector") == [1, 2, 7, 8]


def test_existing_version_is_refused(tmp_path: pathlib.Path) -> None:
    publish_version(tmp_path, lambda d, v: fake_saved_model(d), version=3)
    before = sorted(p.name for p in (tmp_path / "deepfake_detector").iterdir())
    with pytest.raises(InvalidInputError, match="version 3 exists"):
        publish_version(tmp_path, lambda d, v: fake_saved_model(d), version=3)
    assert sorted(p.name for p in (tmp_path / "deepfake_detector").iterdir()) == before


def test_repository_that_is_a_file_is_refused(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "models"
    target.write_text("not a directory")
    with pytest.raises(InvalidInputError, match="is a file"):
        publish_version(target, lambda d, v: fake_saved_model(d))


def test_incomplete_build_is_never_published(tmp_path: pathlib.Path) -> None:
    def build(staging: pathlib.Path, version: int) -> None:
        (staging / "saved_model.pb").write_bytes(b"graph")  # no variables/variables.index

    with pytest.raises(InvalidInputError, match="variables.index"):
        publish_version(tmp_path, build)
    assert list_versions(tmp_path / "deepfake_detector") == []
    assert not list((tmp_path / "deepfake_detector").glob(".incoming-*"))


@pytest.mark.parametrize("point", ["during_build", "after_build", "fsync", "rename"])
def test_crash_at_any_point_leaves_no_partial_version(tmp_path: pathlib.Path, point: str) -> None:
    """A publish killed at several points (a child process that dies with os._exit)."""

    def child() -> None:
        if point == "fsync":
            publish.fsync_tree = lambda root: os._exit(9)  # type: ignore[assignment]
        if point == "rename":
            publish.os.rename = lambda a, b: os._exit(9)  # type: ignore[assignment]

        def build(staging: pathlib.Path, version: int) -> None:
            fake_saved_model(staging)
            if point == "during_build":
                (staging / "variables" / "variables.index").unlink()
                os._exit(9)
            if point == "after_build":
                os._exit(9)

        publish_version(tmp_path, build)
        os._exit(0)

    context = multiprocessing.get_context("fork")
    process = context.Process(target=child)
    process.start()
    process.join(30)
    assert process.exitcode == 9
    base = tmp_path / "deepfake_detector"
    assert list_versions(base) == []
    assert numeric_dirs_are_complete(base)
    # The next publish cleans the leftover staging directory and takes number 1.
    assert publish_version(tmp_path, lambda d, v: fake_saved_model(d)).name == "1"
    assert not list(base.glob(".incoming-*"))


def _publish_one(repository: str) -> int:
    return int(publish_version(repository, lambda d, v: fake_saved_model(d)).name)


def test_concurrent_publishes_get_different_numbers(tmp_path: pathlib.Path) -> None:
    with multiprocessing.get_context("fork").Pool(4) as pool:
        numbers = pool.map(_publish_one, [str(tmp_path)] * 8)
    assert sorted(numbers) == list(range(1, 9))
    assert numeric_dirs_are_complete(tmp_path / "deepfake_detector")


def test_an_unreadable_listing_never_picks_a_number(tmp_path: pathlib.Path, monkeypatch) -> None:
    publish_version(tmp_path, lambda d, v: fake_saved_model(d), version=3)
    real = pathlib.Path.iterdir

    def flaky(self):  # type: ignore[no-untyped-def]
        if self.name == "deepfake_detector":
            raise OSError(errno.EMFILE, "Too many open files")
        return real(self)

    monkeypatch.setattr(pathlib.Path, "iterdir", flaky)
    with pytest.raises(PublishError, match="Too many open files"):
        publish_version(tmp_path, lambda d, v: fake_saved_model(d))  # not "version 1" below 3
    monkeypatch.undo()
    assert list_versions(tmp_path / "deepfake_detector") == [3]


def test_full_disk_is_a_clear_error_and_changes_nothing(tmp_path: pathlib.Path, monkeypatch) -> None:
    def build(staging: pathlib.Path, version: int) -> None:
        fake_saved_model(staging)
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(PublishError, match="no space left"):
        publish_version(tmp_path, build)
    assert list_versions(tmp_path / "deepfake_detector") == []
    assert not list((tmp_path / "deepfake_detector").glob(".incoming-*"))


def test_copy_saved_model_checks_its_source(tmp_path: pathlib.Path) -> None:
    with pytest.raises(NotFoundError):
        copy_saved_model(tmp_path / "missing")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "saved_model.pb").write_bytes(b"x")
    with pytest.raises(InvalidInputError, match="not a complete SavedModel"):
        copy_saved_model(tmp_path / "half")
