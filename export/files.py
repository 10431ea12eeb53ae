"""Durable, atomic file operations for the model repository (TensorFlow-free).

TF Serving reads the repository while it is written: a file must be replaced whole (write a
sibling, fsync, rename), a directory's entries made durable with an fsync of the directory, and
writers serialised with ``flock`` (released when the process dies, so a killed command never
leaves a stale lock). Everything here is readable by other users (``0644``): TF Serving often runs
as another user than the one who publishes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import pathlib
import tempfile
import time
from collections.abc import Callable, Iterator

from deepfake_client.errors import DeepfakeError

FILE_MODE = 0o644


class PublishError(DeepfakeError):
    """Raised when the repository cannot be written (disk full, read-only, permissions); exit 3."""

    exit_code = 3


def repository_error(err: OSError, path: pathlib.Path, what: str) -> PublishError:
    """One line naming ``path`` for a file system error, as Contract 5 wants (no raw OSError lists)."""
    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return PublishError(f"{path}: {what}: no space left on the device; nothing was changed")
    if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return PublishError(f"{path}: {what}: not writable ({err.strerror}); nothing was changed")
    return PublishError(f"{path}: {what}: {err.strerror or err}")


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


def atomic_write_text(path: str | pathlib.Path, text: str, mode: int = FILE_MODE) -> None:
    """Replace ``path`` with ``text`` atomically: write a sibling, fsync, rename, fsync the directory."""
    path = pathlib.Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fchmod(handle.fileno(), mode)  # mkstemp makes 0600: TF Serving may run as another user
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_path(path.parent)


@contextlib.contextmanager
def file_lock(path: pathlib.Path, *, timeout_s: float, busy: Callable[[], DeepfakeError]) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``path`` (released if the process dies).

    Waits up to ``timeout_s`` for another holder (0: not at all), then raises ``busy()``.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")  # noqa: SIM115 - closed below, after the lock is released
    except OSError as err:
        raise repository_error(err, path, "cannot take the lock") from err
    with handle:
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
