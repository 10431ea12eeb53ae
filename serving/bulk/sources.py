"""What ``deepfake-bulk scan`` reads: local paths, globs, manifests, and object-store URIs.

Local paths, folders (recursive) and globs are expanded by the client's own
``deepfake_client.cli.expand_paths`` (so a bulk scan and ``deepfake-scan`` find the same files,
and an argument naming nothing becomes an error row, not a silent skip). A manifest is a text file
of one path or URI per line (blank lines and ``#`` comments ignored). A URI with a scheme
(``s3://bucket/videos/``, ``gs://...``, ``hdfs://...``) is listed and read through PyArrow's file
systems, the ones Ray Data itself uses; a worker copies such a file to a local temporary file,
scans it and deletes the copy (the decoder needs a seekable local file).
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence

from deepfake_client.errors import DeepfakeError, InvalidInputError, NotFoundError, ServerUnavailableError


def is_uri(source: str) -> bool:
    """``scheme://...`` (but not a Windows drive letter); ``file://`` counts as a URI too."""
    scheme, sep, _ = source.partition("://")
    return bool(sep) and len(scheme) > 1 and scheme.replace("+", "").isalnum()


def read_manifest(path: str | os.PathLike[str]) -> list[str]:
    """The paths and URIs of a manifest file (one per line)."""
    try:
        text = pathlib.Path(path).read_text()
    except FileNotFoundError as err:
        raise NotFoundError(f"--manifest {path}: no such file") from err
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInputError(f"--manifest {path}: cannot read it ({err})") from err
    lines = [line.strip() for line in text.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _list_uri(uri: str) -> list[str]:
    """The files at ``uri``: the object itself, or every object under it (recursively)."""
    import pyarrow.fs as pafs

    try:
        fs, path = pafs.FileSystem.from_uri(uri)
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.File:
            return [uri]
        if info.type == pafs.FileType.NotFound:
            raise NotFoundError(f"{uri}: no such object or folder")
        found = fs.get_file_info(pafs.FileSelector(path, recursive=True))
    except (OSError, ValueError) as err:  # pyarrow's errors (ArrowException) subclass these
        raise InvalidInputError(f"{uri}: cannot list it ({err})") from err
    # the URI's scheme and authority before the file system's path (s3://, hdfs://host:8020, ...)
    stem = uri.rstrip("/")
    prefix = stem[: len(stem) - len(path.rstrip("/"))] if stem.endswith(path.rstrip("/")) else uri
    return sorted(prefix + f.path for f in found if f.type == pafs.FileType.File)


def expand_sources(
    args: Sequence[str], manifests: Sequence[str] = ()
) -> tuple[list[str], dict[str, DeepfakeError]]:
    """Every file the arguments and manifests name, de-duplicated and sorted, and the arguments
    that name nothing with their errors (each gets an error row, as in ``deepfake-scan``).

    Local files are absolute, normalised paths (``deepfake_client.rows.source_key``); URIs stay
    as written.
    """
    from deepfake_client.cli import Unusable, expand_paths
    from deepfake_client.rows import source_key

    named = list(args) + [entry for m in manifests for entry in read_manifest(m)]
    found: set[str] = set()
    unusable: dict[str, DeepfakeError] = {}
    for arg in named:
        if is_uri(arg) and not arg.startswith("file://"):
            try:
                files = _list_uri(arg)
            except DeepfakeError as err:
                unusable[arg] = err
                continue
            if not files:
                unusable[arg] = NotFoundError(f"{arg}: no files under it")
            found.update(files)
            continue
        local = arg[len("file://") :] if arg.startswith("file://") else arg
        for item in expand_paths([local]):
            if isinstance(item, Unusable):
                unusable[item.source] = item.error
            else:
                found.add(source_key(item))
    return sorted(found), unusable


@contextlib.contextmanager
def local_copy(source: str) -> Iterator[str]:
    """A local path to scan ``source``: itself if local, else a temporary copy (deleted after)."""
    if not is_uri(source):
        yield source
        return
    import pyarrow.fs as pafs

    suffix = pathlib.PurePosixPath(source.split("://", 1)[1]).suffix
    with tempfile.TemporaryDirectory(prefix="deepfake-bulk-") as folder:
        local = os.path.join(folder, f"source{suffix}")
        try:
            fs, path = pafs.FileSystem.from_uri(source)
            with fs.open_input_stream(path) as remote, open(local, "wb") as handle:
                shutil.copyfileobj(remote, handle, 1 << 20)
        except FileNotFoundError as err:
            raise NotFoundError(f"{source}: no such object") from err
        except ValueError as err:  # pyarrow's ArrowInvalid: a URI it cannot take
            raise InvalidInputError(f"{source}: cannot read it ({err})") from err
        except OSError as err:  # pyarrow's ArrowIOError: the store did not answer (a re-run tries again)
            raise ServerUnavailableError(f"{source}: cannot read it from its store ({err})") from err
        yield local
