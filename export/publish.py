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
import os
import pathlib
import shutil
import tempfile
from collections.abc import Callable

from deepfake_client.contract import METADATA_FILE, MODEL_NAME
from deepfake_client.errors import InvalidInputError, NotFoundError
from export.files import PublishError, file_lock, fsync_path, fsync_tree, repository_error

INCOMING_PREFIX = ".incoming-"
LOCK_FILE = ".publish.lock"
# What a version directory must hold before it may get a numeric name (TF Serving issues #1086, #1027:
# a version without variables.index loads "successfully" and then fails every request).
REQUIRED_FILES = ("saved_model.pb", "variables/variables.index")


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


DIR_MODE = 0o755  # TF Serving may run as another user (non-root images, runAsNonRoot, NFS root_squash)


def publish_version(
    repository: str | pathlib.Path,
    build: Callable[[pathlib.Path, int], None],
    version: int | None = None,
    model_name: str = MODEL_NAME,
    *,
    config_path: str | pathlib.Path | None = None,
    server_base_path: str | None = None,
    mode: int = DIR_MODE,
    log: Callable[[str], None] = lambda line: None,
) -> pathlib.Path:
    """Publish a new version built by ``build(staging_dir, version)``, atomically, and record it.

    The version is not served (the rollout's ``canary`` step does that), except the repository's
    first one, which gets the initial ``models.config``: served alone and labelled ``stable``. The
    release history records the publish. ``deepfake-export --repository`` and ``deepfake-rollout
    publish`` both come here, so they leave a repository in the same state.

    Args:
        repository: the model repository (``models/``); created if missing.
        build: writes the complete SavedModel into the (empty, existing) staging directory.
        version: the version number; the next free one (highest + 1) when ``None``.
        model_name: the model's directory under the repository.
        config_path: the model config file (default ``<repository>/models.config``).
        server_base_path: the model's base path as the server sees it, for a new ``models.config``
            (default: this host's absolute path).
        mode: the version's directories get ``mode``, its files ``mode`` without execute bits.
        log: where progress lines go.

    Returns:
        The published version directory ``<repository>/<model_name>/<N>``.

    Raises:
        InvalidInputError: the repository path is a file, the version exists, or the build is incomplete.
        PublishError: the disk is full or not writable; the repository is left unchanged.
        RolloutError: models.config is missing and the repository's state cannot be told.
    """
    from export import history  # history -> modelconfig -> files; publish is below neither

    repository = pathlib.Path(repository)
    config_path = pathlib.Path(config_path or repository / history.CONFIG_FILE)
    base = model_dir(repository, model_name)
    try:
        with history.state_lock_waiting(repository):
            history.prepare_repository(repository, config_path, model_name, list_versions(base), log=log)
    except OSError as err:
        raise repository_error(err, base, "publish failed") from err
    target = _publish_directory(base, build, version, mode)
    number = int(target.name)
    try:
        with history.state_lock_waiting(repository):
            history.record_publish(
                repository,
                config_path,
                model_name,
                number,
                server_base_path=server_base_path or str(base.resolve()),
                log=log,
            )
    except history.StateBusyError:
        if not config_path.exists():
            raise  # the first version's config must be written: say so rather than half-publish
        # The version is in place (not served): a publish does not change the config, so only its
        # record is missing. Failing here would make a re-run publish the same model again as N+1.
        log(
            f"version {number} is published (not served); a rollout step kept {history.STATE_LOCK_FILE} "
            "busy, so the release history does not list this publish"
        )
    return target


def _publish_directory(
    base: pathlib.Path, build: Callable[[pathlib.Path, int], None], version: int | None, mode: int
) -> pathlib.Path:
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
                set_modes(staging, mode)
                fsync_tree(staging)
                os.rename(staging, target)  # atomic on one filesystem: TF Serving sees all or nothing
                fsync_path(base)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return target
    except OSError as err:
        raise repository_error(err, base, "publish failed") from err


def set_modes(root: pathlib.Path, mode: int) -> None:
    """Directories get ``mode`` (mkdtemp made ``0700``), files ``mode`` without execute bits."""
    file_mode = mode & 0o666
    for directory, _, files in os.walk(root):
        os.chmod(directory, mode)
        for name in files:
            os.chmod(os.path.join(directory, name), file_mode)


def copy_saved_model(source: str | pathlib.Path) -> Callable[[pathlib.Path, int], None]:
    """A ``build`` callable for :func:`publish_version` that copies an exported SavedModel directory."""
    source = pathlib.Path(source)
    if not source.is_dir():
        raise NotFoundError(f"{source}: no such SavedModel directory")
    check_version_dir(source)

    def build(staging: pathlib.Path, version: int) -> None:
        # A plain walk instead of shutil.copytree: copytree gathers OSErrors into one shutil.Error
        # (a list of strings, no errno), so a full disk could not be told from other failures.
        for directory, _, files in os.walk(source):
            into = staging / pathlib.Path(directory).relative_to(source)
            into.mkdir(exist_ok=True)
            for name in files:
                shutil.copy2(pathlib.Path(directory, name), into / name)
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
