"""The release history and models.config agree after every publish, crash and hand edit, and
published versions are readable by a server that runs as another user."""

from __future__ import annotations

import errno
import os
import pathlib
import stat
import time

import orjson
import pytest

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import InvalidInputError
from export import history
from export.files import PublishError
from export.history import RolloutError
from export.modelconfig import initial_config, load_config, save_config
from export.publish import copy_saved_model, publish_version
from serving.cli import main as rollout_main
from serving.rollout import Rollout
from tests.export.test_publish import fake_saved_model


def saved_model(path: pathlib.Path) -> pathlib.Path:
    fake_saved_model(path)
    return path


def publish(repository: pathlib.Path, **options) -> int:  # type: ignore[no-untyped-def]
    return int(publish_version(repository, lambda d, v: fake_saved_model(d), **options).name)


def actions(repository: pathlib.Path) -> list[tuple[str, int | None, dict]]:
    return [(r.action, r.version, r.labels) for r in history.read_history(repository)]


def agrees(repository: pathlib.Path) -> bool:
    records = history.read_history(repository)
    text = (repository / "models.config").read_text()
    return bool(records) and records[-1].config_sha256 == history.sha256_text(text)


def test_first_publish_writes_config_and_history_later_ones_only_history(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    assert publish(repository) == 1
    assert publish(repository) == 2
    entry = load_config(repository / "models.config").model()
    assert entry.versions == (1,) and dict(entry.labels) == {"stable": 1}  # publishing serves nothing new
    assert actions(repository) == [("publish", 1, {"stable": 1}), ("publish", 2, {"stable": 1})]
    assert agrees(repository)
    record = history.read_history(repository)[0]
    assert record.user and record.host and record.time.endswith("+00:00")


def test_a_first_publish_that_died_before_its_config_is_taken_in(tmp_path: pathlib.Path) -> None:
    """The crash between the version directory and models.config, reproduced by deleting both files."""
    repository = tmp_path / "models"
    publish(repository)
    (repository / "models.config").unlink()
    (repository / history.HISTORY_FILE).unlink()
    assert publish(repository) == 2
    entry = load_config(repository / "models.config").model()
    assert entry.versions == (1,) and dict(entry.labels) == {"stable": 1}  # not 2, and 1 is not orphaned
    assert [a[:2] for a in actions(repository)] == [("publish", 1), ("publish", 2)]
    assert "recovered" in (history.read_history(repository)[0].note or "")
    assert agrees(repository)


def test_a_missing_config_is_written_back_from_the_history(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    publish(repository)
    before = (repository / "models.config").read_text()
    (repository / "models.config").unlink()
    publish(repository)
    assert (repository / "models.config").read_text() == before


def test_several_versions_and_no_state_is_refused_and_nothing_changes(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    publish(repository)
    publish(repository)
    (repository / "models.config").unlink()
    (repository / history.HISTORY_FILE).unlink()
    with pytest.raises(RolloutError, match="cannot be told"):
        publish(repository)
    assert sorted(p.name for p in (repository / MODEL_NAME).iterdir() if not p.name.startswith(".")) == [
        "1",
        "2",
    ]
    assert not (repository / "models.config").exists()


def test_a_change_that_never_reached_the_config_is_dropped(tmp_path: pathlib.Path) -> None:
    """History written, then the process died before the config: the change never happened."""
    repository = tmp_path / "models"
    publish(repository)
    config_path = repository / "models.config"
    config = load_config(config_path)
    moved = config.with_model(config.model().replace(versions=(1, 2), labels={"stable": 2}))
    records = history.read_history(repository)
    release = history.make_release(moved, action="promote", model=MODEL_NAME, version=2)
    history._write_history(repository, [*records, release])  # the first of the two writes only
    lines: list[str] = []
    after = history.reconcile(repository, config_path, lines.append)
    assert [r.action for r in after] == ["publish"] and agrees(repository)
    assert "never reached" in lines[0]


def test_a_hand_edit_back_to_the_previous_config_is_found_not_dropped(tmp_path: pathlib.Path) -> None:
    """The operator puts back the config of before the last publish, by hand, later: that is a change
    to record, not a command that died between its two writes (whose record would be dropped)."""
    repository = tmp_path / "models"
    publish(repository)
    publish(repository)
    config_path = repository / "models.config"
    first = config_path.read_text()
    config = load_config(config_path)
    moved = config.with_model(config.model().replace(versions=(1, 2), labels={"stable": 2}))
    release = history.make_release(moved, action="promote", model=MODEL_NAME, version=2)
    history._write_history(repository, [*history.read_history(repository), release])  # both writes
    save_config(config_path, moved)
    config_path.write_text(first)  # then, by hand, a minute later
    later = time.time() + 60
    os.utime(config_path, (later, later))
    lines: list[str] = []
    records = history.reconcile(repository, config_path, lines.append)
    assert [r.action for r in records] == ["publish", "publish", "promote", "found"], lines
    assert records[-1].config_sha256 == history.sha256_text(first) and agrees(repository)
    assert "outside deepfake-rollout" in lines[0]


def test_a_hand_edit_is_recorded_as_found(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    publish(repository)
    publish(repository)
    config_path = repository / "models.config"
    config = load_config(config_path)
    save_config(config_path, config.with_model(config.model().replace(versions=(1, 2), labels={"stable": 2})))
    lines: list[str] = []
    records = history.reconcile(repository, config_path, lines.append)
    assert records[-1].action == "found" and records[-1].labels == {"stable": 2}
    assert history.stable_stack(records, MODEL_NAME) == [1, 2] and agrees(repository)
    assert "outside deepfake-rollout" in lines[0]


def test_a_repository_from_before_the_history_starts_one(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    base = repository / MODEL_NAME
    fake_saved_model(base / "1")
    save_config(repository / "models.config", initial_config(str(base), 1))
    assert publish(repository) == 2
    assert [a[0] for a in actions(repository)] == ["found", "publish"]
    assert history.read_history(repository)[0].note == "history started"


def test_stable_stack_walks_back_and_never_onto_a_never_stable_version() -> None:
    config = initial_config("/m", 1)

    def rec(action: str, version: int | None, stable: int):  # type: ignore[no-untyped-def]
        c = config.with_model(config.model().replace(labels={"stable": stable}, versions=(stable,)))
        return history.make_release(c, action=action, model=MODEL_NAME, version=version)

    records = [rec("publish", 1, 1), rec("publish", 2, 1), rec("publish", 3, 1), rec("promote", 3, 3)]
    assert history.stable_stack(records, MODEL_NAME) == [1, 3]  # 2 was never stable
    records.append(rec("rollback", 3, 1))
    assert history.stable_stack(records, MODEL_NAME) == [1]
    assert history.withdrawn(records, MODEL_NAME) == {3}


def test_versions_and_state_files_are_readable_by_other_users(tmp_path: pathlib.Path) -> None:
    repository = tmp_path / "models"
    old = os.umask(0o077)  # a strict umask must not make a version unreadable for TF Serving
    try:
        publish(repository)
    finally:
        os.umask(old)
    version = repository / MODEL_NAME / "1"
    modes = {p.relative_to(version): stat.S_IMODE(p.stat().st_mode) for p in [version, *version.rglob("*")]}
    assert {m for p, m in modes.items() if (version / p).is_dir()} == {0o755}
    assert {m for p, m in modes.items() if (version / p).is_file()} == {0o644}
    for name in ("models.config", history.HISTORY_FILE):
        assert stat.S_IMODE((repository / name).stat().st_mode) == 0o644


def test_mode_option_of_rollout_publish(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    source = saved_model(tmp_path / "export")
    repository = tmp_path / "models"
    assert rollout_main(["publish", str(source), "--repository", str(repository), "--mode", "750"]) == 0
    version = repository / MODEL_NAME / "1"
    assert stat.S_IMODE(version.stat().st_mode) == 0o750
    assert stat.S_IMODE((version / "saved_model.pb").stat().st_mode) == 0o640
    with pytest.raises(SystemExit) as usage:
        rollout_main(["publish", str(source), "--repository", str(repository), "--mode", "abc"])
    assert usage.value.code == 2 and "not an octal mode" in capsys.readouterr().err


def test_full_disk_during_publish_is_one_line_and_changes_nothing(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import shutil

    source = saved_model(tmp_path / "export")
    repository = tmp_path / "models"
    assert rollout_main(["--repository", str(repository), "publish", str(source)]) == 0
    before = (repository / "models.config").read_text(), (repository / history.HISTORY_FILE).read_text()

    def full(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", full)
    capsys.readouterr()
    assert rollout_main(["--repository", str(repository), "publish", str(source)]) == PublishError.exit_code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the device" in err and str(repository) in err
    assert sorted(p.name for p in (repository / MODEL_NAME).iterdir() if not p.name.startswith(".")) == ["1"]
    assert (
        (repository / "models.config").read_text(),
        (repository / history.HISTORY_FILE).read_text(),
    ) == before


@pytest.mark.parametrize("code", [errno.EROFS, errno.ENOSPC])
def test_unwritable_repository_during_a_step_is_one_line(tmp_path, monkeypatch, capsys, code) -> None:  # type: ignore[no-untyped-def]
    """Root ignores permission bits, so the read-only or full file system is injected at the write."""
    import tempfile

    repository = tmp_path / "models"
    publish(repository)
    before = (repository / "models.config").read_text()

    def refuse(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    capsys.readouterr()
    # abort has nothing to do without a canary; publish and rollback would need a server: the config
    # write itself is what fails, through the same record_change every step uses.
    with pytest.raises(PublishError) as caught:
        config = load_config(repository / "models.config")
        history.record_change(
            repository, repository / "models.config", config, action="canary", model=MODEL_NAME, version=1
        )
    message = str(caught.value)
    assert str(repository) in message and "\n" not in message
    assert ("not writable" if code == errno.EROFS else "no space left") in message
    assert caught.value.exit_code == 3
    assert (repository / "models.config").read_text() == before and agrees(repository)


def test_status_shows_the_history_and_options_go_after_the_command(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    repository = tmp_path / "models"
    publish(repository)
    dead = "grpc://127.0.0.1:9"
    assert rollout_main(["status", "--json", "--repository", str(repository), "--server", dead]) == 0
    status = orjson.loads(capsys.readouterr().out)
    assert status["labels"] == {"stable": 1} and status["history_agrees"] is True
    assert [r["action"] for r in status["history"]] == ["publish"]
    assert "config" not in status["history"][0]


def test_rollback_without_an_earlier_stable_is_refused_and_changes_nothing(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    repository = tmp_path / "models"
    publish(repository)
    publish(repository)
    before = (repository / "models.config").read_text(), (repository / history.HISTORY_FILE).read_text()
    code = rollout_main(["rollback", "--repository", str(repository), "--server", "grpc://127.0.0.1:9"])
    assert code == RolloutError.exit_code
    err = capsys.readouterr().err
    assert "no stable before it" in err and err.count("\n") == 1
    assert (
        (repository / "models.config").read_text(),
        (repository / history.HISTORY_FILE).read_text(),
    ) == before
    assert rollout_main(["abort", "--repository", str(repository)]) == RolloutError.exit_code
    assert "no canary" in capsys.readouterr().err


def test_rollout_publish_and_publish_version_leave_the_same_state(tmp_path: pathlib.Path) -> None:
    source = saved_model(tmp_path / "export")
    a, b = tmp_path / "a", tmp_path / "b"
    Rollout(repository=a).publish(source, server_base_path="/models/deepfake_detector")
    publish_version(b, copy_saved_model(source), server_base_path="/models/deepfake_detector")
    assert (a / "models.config").read_text() == (b / "models.config").read_text()
    assert [x[:2] for x in actions(a)] == [x[:2] for x in actions(b)] == [("publish", 1)]


def test_a_publish_during_a_long_rollout_step_still_succeeds(tmp_path: pathlib.Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A canary that takes the state lock while a version is being built (and holds it, waiting for
    its own version) must not turn a publish whose version is in place into a failure: a re-run
    would publish the same model again as the next number."""
    import contextlib

    repository = tmp_path / "models"
    publish(repository)
    waited = history.state_lock_waiting
    monkeypatch.setattr(history, "state_lock_waiting", lambda repo: waited(repo, timeout_s=0.2))
    canary = contextlib.ExitStack()

    def build(staging: pathlib.Path, version: int) -> None:
        fake_saved_model(staging)
        canary.enter_context(history.state_lock(repository, timeout_s=0, busy=lambda: RolloutError("held")))

    lines: list[str] = []
    with canary:
        path = publish_version(repository, build, log=lines.append)
    assert path.name == "2" and (path / "saved_model.pb").is_file()
    assert "does not list this publish" in lines[-1]


def test_a_rollout_reaches_every_replica_itself() -> None:
    from serving.cli import replica_urls

    assert replica_urls(["grpc://a:8500,grpc://b:8500", " http://c:8501 "]) == [
        "grpc://a:8500",
        "grpc://b:8500",
        "http://c:8501",
    ]
    with pytest.raises(InvalidInputError, match="names every replica"):
        replica_urls(["dns:///tfserving-pods:8500"])


def test_a_step_on_a_missing_repository_creates_nothing(tmp_path: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    missing = tmp_path / "modles"  # a typo
    for step in ("rollback", "abort", "promote", "canary"):
        assert rollout_main([step, "--repository", str(missing), "--server", "grpc://127.0.0.1:9"]) == 3
        assert capsys.readouterr().err.count("\n") == 1
    assert not missing.exists()
