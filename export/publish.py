"""Atomic publishing of a model version into a TF Serving model repository (Contract 1).

TensorFlow-free: it also runs on a Docker host. TF Serving loads any numeric directory the moment
it appears, complete or not, so a version is built in a hidden sibling directory on the same
filesystem (``.incoming-<N>-<random>``), fsynced, checked, and only then renamed to ``<N>``.
A crash at any point leaves either no new version or a complete one; leftovers of a crashed
publish are removed by the next one. Concurrent publishes are serialised by a lock file, so they
never get the same number.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator

from deepfake_client.contract import METADATA_FILE, MODEL_NAME
from deepfake_client.errors import DeepfakeError, InvalidInputError, NotFoundError

INCOMING_PREFIX = ".incoming-"
LOCK_FILE = ".publish.lock"
# What a version directory must hold before it may get a numeric name (TF Serving issues #1086, #1027:
# a version without variables.index loads "successfully" and then fails every request).
REQUIRED_FILES = ("saved_model.pb", "variables/variables.index")


class PublishError(DeepfakeError):
    """Raised when a version cannot be published (disk full, permissions); the repository is unchanged."""

    exit_code = 3


def fsync_path(path: pathlib.Path) -> None:
    """fsync a file or a directory (a directory's fsync makes renames and new entries durable)."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: pathlib.Path) -> None:
    """fsync every file and directory under ``root``, deepest first."""
    for directory, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_path(pathlib.Path(directory, name))
        fsync_path(pathlib.Path(directory))


def atomic_write_text(path: str | pathlib.Path, text: str) -> None:
    """Replace ``path`` with ``text`` atomically: write a sibling, fsync, rename, fsync the directory."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


def model_dir(repository: str | pathlib.Path, model_name: str = MODEL_NAME) -> pathlib.Path:
    """``<repository>/<model_name>``, checked to be usable as a model base path."""
    repository = pathlib.Path(repository)
    if repository.exists() and not repository.is_dir():
        raise InvalidInputError(f"{repository}: the model repository path is a file, not a directory")
    base = repository / model_name
    if base.exists() and not base.is_dir():
        raise InvalidInputError(f"{base}: expected a directory of versions, found a file")
    return base


def version_dirs(base: str | pathlib.Path) -> dict[int, pathlib.Path]:
    """Version number -> directory for every child of a model base path whose name is an integer.

    What TF Serving serves from: hidden staging directories and other names are not versions. A
    missing base path has none; other listing errors (permissions, I/O) raise ``OSError``, so a
    publish never picks a number from a listing it could not read.
    """
    base = pathlib.Path(base)
    if not base.exists():
        return {}
    return {int(p.name): p for p in base.iterdir() if p.name.isascii() and p.name.isdigit() and p.is_dir()}


def list_versions(base: str | pathlib.Path) -> list[int]:
    """The published version numbers under a model base path, sorted."""
    return sorted(version_dirs(base))


def check_version_dir(path: str | pathlib.Path) -> None:
    """Raise ``InvalidInputError`` unless ``path`` holds a complete SavedModel."""
    path = pathlib.Path(path)
    missing = [name for name in REQUIRED_FILES if not (path / name).is_file()]
    if missing:
        raise InvalidInputError(f"{path}: not a complete SavedModel (missing {', '.join(missing)})")


@contextlib.contextmanager
def file_lock(path: pathlib.Path, *, timeout_s: float, busy: Callable[[], DeepfakeError]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (released if the process dies).

    Waits up to ``timeout_s`` for another holder (0: not at all), then raises ``busy()``.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy() from None
                time.sleep(0.05)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def repository_lock(base: pathlib.Path, timeout_s: float = 60.0) -> contextlib.AbstractContextManager[None]:
    """The lock that serialises publishes into ``base`` (``<base>/.publish.lock``)."""
    return file_lock(
        base / LOCK_FILE,
        timeout_s=timeout_s,
        busy=lambda: PublishError(f"{base}: another publish holds {LOCK_FILE} for over {timeout_s:.0f} s"),
    )


def clean_incoming(base: pathlib.Path) -> list[pathlib.Path]:
    """Remove temporary directories left behind by crashed publishes. Call with the lock held."""
    removed = []
    for path in base.glob(f"{INCOMING_PREFIX}*"):
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def publish_version(
    repository: str | pathlib.Path,
    build: Callable[[pathlib.Path, int], None],
    version: int | None = None,
    model_name: str = MODEL_NAME,
) -> pathlib.Path:
    """Publish a new version built by ``build(staging_dir, version)``, atomically.

    Args:
        repository: the model repository (``models/``); created if missing.
        build: writes the complete SavedModel into the (empty, existing) staging directory.
        version: the version number; the next free one (highest + 1) when ``None``.
        model_name: the model's directory under the repository.

    Returns:
        The published version directory ``<repository>/<model_name>/<N>``.

    Raises:
        InvalidInputError: the repository path is a file, the version exists, or the build is incomplete.
        PublishError: the disk is full or not writable; the repository is left unchanged.
    """
    base = model_dir(repository, model_name)
    try:
        with repository_lock(base):
            clean_incoming(base)
            existing = list_versions(base)
            if version is None:
                version = (existing[-1] + 1) if existing else 1
            elif version < 1:
                raise InvalidInputError(f"version must be a positive integer, got {version}")
            target = base / str(version)
            if target.exists():
                raise InvalidInputError(f"{target}: version {version} exists; versions are never modified")
            staging = pathlib.Path(tempfile.mkdtemp(prefix=f"{INCOMING_PREFIX}{version}-", dir=base))
            try:
                build(staging, version)
                check_version_dir(staging)
                fsync_tree(staging)
                os.rename(staging, target)  # atomic on one filesystem: TF Serving sees all or nothing
                fsync_path(base)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return target
    except OSError as err:
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            raise PublishError(f"{base}: no space left on the device; nothing was published") from err
        if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise PublishError(f"{base}: not writable ({err.strerror}); nothing was published") from err
        raise PublishError(f"{base}: publish failed: {err}") from err


def copy_saved_model(source: str | pathlib.Path) -> Callable[[pathlib.Path, int], None]:
    """A ``build`` callable for :func:`publish_version` that copies an exported SavedModel directory."""
    source = pathlib.Path(source)
    if not source.is_dir():
        raise NotFoundError(f"{source}: no such SavedModel directory")
    check_version_dir(source)

    def build(staging: pathlib.Path, version: int) -> None:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        _set_metadata_version(staging, version)

    return build


def _set_metadata_version(staging: pathlib.Path, version: int) -> None:
    """Record the published number in ``assets.extra/model.json`` (it is only known at publish time)."""
    import orjson

    path = staging / METADATA_FILE
    if path.is_file():
        meta = orjson.loads(path.read_bytes())
        meta["version"] = version
        path.write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
