"""The release history of a model repository: what was served and labelled, when, and by whom.

``<repository>/release-history.jsonl`` holds one JSON object a line, one per change of
``models.config`` made by this project's tools (publish, canary, promote, rollback, abort), each
with the whole config text as it was after the change. It is the one place that decides what
``stable`` was: a rollback returns to the previous stable *in this history*, never to "the highest
version below".

Two files cannot be renamed at once, so the history is written first and the config second, each
atomically, and every command first reconciles them (:func:`reconcile`):

- the config matches the last record: nothing to do;
- the config matches the record before it and was last written before the last record was made: a
  command died between the two writes, so its change never reached the server; the unapplied
  record is dropped (written after it, the config was put back by hand: the next case);
- the config is missing: it is written back from the last record;
- neither: the config was edited by hand (or by an older tool); a ``found`` record takes it in, so
  the history still says what the server was told to serve.

TensorFlow-free (it runs on the Docker host). Callers hold :func:`state_lock`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import getpass
import hashlib
import os
import pathlib
import socket
from collections.abc import Callable

import orjson

from deepfake_client.contract import STABLE_LABEL
from deepfake_client.errors import DeepfakeError, InvalidInputError
from export.files import atomic_write_text, file_lock, repository_error
from export.modelconfig import (
    ModelEntry,
    ServingConfig,
    initial_config,
    load_config,
    parse_config,
    render_config,
)

HISTORY_FILE = "release-history.jsonl"
CONFIG_FILE = "models.config"
STATE_LOCK_FILE = ".rollout.lock"
# Actions whose new stable label was not chosen by the history itself (a rollback pops it instead).
ROLLBACK = "rollback"


class RolloutError(DeepfakeError):
    """Raised when a rollout step is refused: golden-set mismatch, another rollout running, no canary,
    no earlier stable, or a repository whose state cannot be told."""

    exit_code = 5
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"


class StateBusyError(RolloutError):
    """Raised when the state lock stayed held (a rollout step waiting for a version) past a wait."""


@dataclasses.dataclass(frozen=True)
class Release:
    """One change of what is served: the action, the version it concerned, and the state after it."""

    time: str
    action: str
    model: str
    version: int | None
    labels: dict[str, int]
    served: list[int] | str  # the served versions (``specific``), else the policy's name
    user: str
    host: str
    config_sha256: str
    config: str  # the whole models.config text after the change
    golden: dict | None = None  # the golden check that allowed the change
    note: str | None = None

    def summary(self) -> dict:
        """The record without the config text (for ``status`` and people)."""
        row = dataclasses.asdict(self)
        del row["config"], row["config_sha256"]
        return {k: v for k, v in row.items() if v is not None}


def history_path(repository: str | pathlib.Path) -> pathlib.Path:
    return pathlib.Path(repository) / HISTORY_FILE


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def state_lock(
    repository: str | pathlib.Path, *, timeout_s: float, busy: Callable[[], DeepfakeError]
) -> contextlib.AbstractContextManager[None]:
    """The lock every change of ``models.config`` and the history is made under."""
    return file_lock(pathlib.Path(repository) / STATE_LOCK_FILE, timeout_s=timeout_s, busy=busy)


def state_lock_waiting(repository: str | pathlib.Path, timeout_s: float = 60.0):  # type: ignore[no-untyped-def]
    """The state lock as a publish takes it: it waits for a rollout step to finish."""
    return state_lock(
        repository,
        timeout_s=timeout_s,
        busy=lambda: StateBusyError(
            f"{repository}: a rollout step held {STATE_LOCK_FILE} for over {timeout_s:.0f} s"
        ),
    )


def read_history(repository: str | pathlib.Path) -> list[Release]:
    """Every record, oldest first (``[]`` without a history file).

    Raises:
        InvalidInputError: a line is not a record (the file was damaged by hand).
    """
    path = history_path(repository)
    try:
        lines = path.read_bytes().splitlines()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise repository_error(err, path, "cannot read the release history") from err
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            records.append(Release(**orjson.loads(line)))
        except (orjson.JSONDecodeError, TypeError) as err:
            raise InvalidInputError(f"{path}:{number}: not a release record ({err})") from err
    return records


def _write_history(repository: pathlib.Path, records: list[Release]) -> None:
    text = "".join(orjson.dumps(dataclasses.asdict(r)).decode() + "\n" for r in records)
    atomic_write_text(history_path(repository), text)


def _entry_state(config: ServingConfig, model: str) -> tuple[dict[str, int], list[int] | str]:
    entry: ModelEntry = config.model(model)
    served = list(entry.versions) if entry.policy == "specific" else entry.policy
    return dict(entry.labels), served


def make_release(
    config: ServingConfig,
    *,
    action: str,
    model: str,
    version: int | None,
    golden: dict | None = None,
    note: str | None = None,
) -> Release:
    text = render_config(config)
    labels, served = _entry_state(config, model)
    return Release(
        time=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds"),
        action=action,
        model=model,
        version=version,
        labels=labels,
        served=served,
        user=_user(),
        host=socket.gethostname(),
        config_sha256=sha256_text(text),
        config=text,
        golden=golden,
        note=note,
    )


def record_change(
    repository: str | pathlib.Path,
    config_path: str | pathlib.Path,
    config: ServingConfig,
    *,
    action: str,
    model: str,
    version: int | None,
    golden: dict | None = None,
    note: str | None = None,
) -> Release:
    """Append a record of ``config`` to the history, then write ``config`` (both atomic).

    If the config cannot be written, the record is taken back: the history never claims a change
    the server was not told about (a crash in between is repaired by :func:`reconcile`).

    Raises:
        PublishError: the repository is not writable or the disk is full (exit 3, naming the path).
    """
    repository = pathlib.Path(repository)
    records = read_history(repository)
    release = make_release(config, action=action, model=model, version=version, golden=golden, note=note)
    try:
        _write_history(repository, [*records, release])
    except OSError as err:
        raise repository_error(err, history_path(repository), "cannot write the release history") from err
    try:
        atomic_write_text(config_path, release.config)
    except OSError as err:
        with contextlib.suppress(OSError):
            _write_history(repository, records)
        raise repository_error(err, pathlib.Path(config_path), "cannot write the model config") from err
    return release


def reconcile(
    repository: str | pathlib.Path, config_path: str | pathlib.Path, log: Callable[[str], None]
) -> list[Release]:
    """Make the history and ``models.config`` agree (see the module docstring); the history after.

    A repository whose config was never recorded (made before the history existed, or by hand)
    gets a ``found`` record of it. Callers hold :func:`state_lock`.
    """
    repository, config_path = pathlib.Path(repository), pathlib.Path(config_path)
    records = read_history(repository)
    try:
        text: str | None = config_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = None
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"{config_path}: cannot read the model config: {err}") from err
    if text is None:
        if records:
            try:
                atomic_write_text(config_path, records[-1].config)
            except OSError as err:
                raise repository_error(err, config_path, "cannot write the model config") from err
            log(f"{config_path} was missing: written back from the release history ({records[-1].action})")
        return records
    digest = sha256_text(text)
    if records and records[-1].config_sha256 == digest:
        return records
    if (
        len(records) >= 2
        and records[-2].config_sha256 == digest
        and not _written_after(config_path, records[-1])
    ):
        dropped = records.pop()
        try:
            _write_history(repository, records)
        except OSError as err:
            raise repository_error(err, history_path(repository), "cannot write the release history") from err
        log(
            f"the last '{dropped.action}' never reached {config_path} (interrupted): dropped from the history"
        )
        return records
    config = ServingConfig.from_proto(parse_config(text, source=str(config_path)))
    note = "models.config was changed outside deepfake-rollout" if records else "history started"
    found = [
        make_release(config, action="found", model=m.name, version=None, note=note) for m in config.models
    ]
    try:
        _write_history(repository, [*records, *found])  # one write for every model of the config
    except OSError as err:
        raise repository_error(err, history_path(repository), "cannot write the release history") from err
    records.extend(found)
    if records and note != "history started":
        log(f"{note}: recorded as found in {HISTORY_FILE}")
    return records


# An interrupted command never wrote the config after making its record; a config written more than
# this long after the record (the margin covers clocks of two hosts sharing the volume) was put
# back by someone, and is taken in as found.
HAND_EDIT_MARGIN_S = 1.0


def _written_after(config_path: pathlib.Path, record: Release) -> bool:
    """Whether ``config_path`` was last written after ``record`` was made (beyond the margin)."""
    try:
        made = datetime.datetime.fromisoformat(record.time).timestamp()
        return config_path.stat().st_mtime > made + HAND_EDIT_MARGIN_S
    except (OSError, ValueError):  # no usable time: read it as the interrupted command
        return False


def stable_stack(records: list[Release], model: str) -> list[int]:
    """The stables of ``model`` in order, with every rolled-back one removed.

    The last item is the current stable; a rollback returns to the one before it.
    """
    stack: list[int] = []
    for record in records:
        if record.model != model:
            continue
        stable = record.labels.get(STABLE_LABEL)
        if record.action == ROLLBACK:
            if stack:
                stack.pop()
            if stable is not None and (not stack or stack[-1] != stable):
                stack.append(stable)  # only if the history lost track; normally already there
            continue
        if stable is not None and (not stack or stack[-1] != stable):
            stack.append(stable)
    return stack


def withdrawn(records: list[Release], model: str) -> set[int]:
    """Versions that were rolled back from or aborted and not labelled again since."""
    out: set[int] = set()
    for record in records:
        if record.model != model:
            continue
        if record.action in (ROLLBACK, "abort") and record.version is not None:
            out.add(record.version)
        elif record.action in ("canary", "promote") and record.version is not None:
            out.discard(record.version)
    return out


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return str(os.getuid())


def prepare_repository(
    repository: pathlib.Path,
    config_path: pathlib.Path,
    model: str,
    published: list[int],
    log: Callable[[str], None],
) -> None:
    """Before a publish: reconcile, and take in a first version whose publish died before its config.

    With neither ``models.config`` nor a history, one version on disk can only be the first
    publish, interrupted: it gets the initial config (served, stable) as that publish would have
    given it. Several versions with neither cannot be told apart: refused, nothing changed.
    """
    records = reconcile(repository, config_path, log)
    if records or config_path.exists() or not published:
        return
    if len(published) > 1:
        raise RolloutError(
            f"{repository}: versions {published} are published but there is neither {config_path.name} "
            f"nor {HISTORY_FILE}, so what was stable cannot be told; write {config_path} (see "
            "serving/models.config) naming the stable version, then publish again"
        )
    record_change(
        repository,
        config_path,
        initial_config(str((repository / model).resolve()), published[0], model),
        action="publish",
        model=model,
        version=published[0],
        note="recovered: the first publish ended before writing models.config",
    )
    log(f"version {published[0]} was published without {config_path.name}: served and labelled stable now")


def record_publish(
    repository: pathlib.Path,
    config_path: pathlib.Path,
    model: str,
    version: int,
    *,
    server_base_path: str,
    log: Callable[[str], None],
) -> Release:
    """Record a publish; the repository's first version also gets the initial config (served, stable)."""
    reconcile(repository, config_path, log)
    if config_path.exists():
        config = load_config(config_path)
        try:
            config.model(model)
        except DeepfakeError:  # another model's config: this one joins it, served and stable
            config = config.with_model(initial_config(server_base_path, version, model).model(model))
            log(f"{config_path}: {model} added, version {version} served and labelled stable")
        release = record_change(
            repository, config_path, config, action="publish", model=model, version=version
        )
    else:
        release = record_change(
            repository,
            config_path,
            initial_config(server_base_path, version, model),
            action="publish",
            model=model,
            version=version,
            note="first version: served and labelled stable",
        )
        log(f"wrote {config_path}: version {version} served and labelled stable")
    return release
