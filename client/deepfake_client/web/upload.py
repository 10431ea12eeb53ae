"""Receiving one uploaded file: streamed to a uniquely named temporary file, size-limited while streaming.

The request body is fed chunk by chunk to python-multipart's push parser; the bytes of the file
part go straight to ``mkstemp`` in the upload folder. Nothing is buffered in memory beyond one
chunk, the size limit is enforced on the bytes received (``Content-Length`` is only an early
refusal), and on any failure (too large, bad multipart, the client hanging up) the partial file is
removed before the error propagates. The caller removes the file after the scan (``Upload.remove``).

Whether an upload is accepted, and as what, is decided by the client's one input gate
(``deepfake_client.inputs.detect_kind``, from the content, on a worker thread), exactly as for
``deepfake-scan``: neither the file's name nor its declared type counts. A file the gate refuses
is a 415 with the gate's one-line reason.

A full disk is a 507 and an upload folder that cannot be written (read-only, missing rights) a 503,
each with a plain message (:func:`storage_error`); :func:`check_upload_dir` is the health check.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from deepfake_client.errors import DeepfakeError, InvalidInputError, ServerUnavailableError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024  # a non-file form field (none is used; a bound so none can be abused)


class UploadTooLargeError(InvalidInputError):
    """Raised when an upload goes over the gateway's size limit (checked while it streams)."""

    http_status = 413


class UnsupportedMediaError(InvalidInputError):
    """Raised when an upload is neither a supported image nor a supported video type."""

    http_status = 415


class StorageFullError(DeepfakeError):
    """Raised when the upload folder's disk (or quota) is full: HTTP 507."""

    http_status = 507


class StorageUnavailableError(ServerUnavailableError):
    """Raised when the upload folder cannot be written (read-only, no rights, not a folder)."""


def storage_error(err: OSError) -> DeepfakeError:
    """The plain error a user sees for an ``OSError`` on the upload folder; the cause stays in the log."""
    import errno

    if err.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(
            "the gateway has no room for this upload right now; try again later or send a smaller file"
        )
    reason = os.strerror(err.errno).lower() if err.errno else type(err).__name__
    return StorageUnavailableError(f"the gateway cannot store uploads right now ({reason}); try again later")


def check_upload_dir(directory: pathlib.Path, *, need_bytes: int = 0) -> str | None:
    """None if an upload can be written into ``directory`` now, else why not (one line).

    Creates the folder if missing and writes (then removes) a small probe file; ``need_bytes`` is
    the free space wanted (one upload at the size limit).
    """
    import shutil

    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, path = _make_temp(directory)
        try:
            os.write(fd, b"probe")
        finally:
            os.close(fd)
            path.unlink(missing_ok=True)
        free = shutil.disk_usage(directory).free
    except OSError as err:
        return f"upload folder {directory}: {err.strerror or err}"
    if free < need_bytes:
        return f"upload folder {directory}: {format_mb(free)} free, less than one upload at the limit"
    return None


def format_mb(size_bytes: int) -> str:
    """A size in MB (2**20 bytes, as ``--max-upload-mb`` counts them): 200 MB, 0.5 MB, 209.7 MB."""
    return f"{size_bytes / 2**20:.1f}".removesuffix(".0") + " MB"


class ClientGoneError(InvalidInputError):
    """Raised when the client disconnects before the upload is complete."""

    http_status = 400


@dataclass
class Upload:
    """One received file: where it is on disk, what the client called it, and what it is."""

    path: pathlib.Path
    filename: str
    content_type: str
    size: int
    kind: str  # "image" or "video"

    def remove(self) -> None:
        """Delete the temporary file (idempotent)."""
        self.path.unlink(missing_ok=True)


def accept_media(path: pathlib.Path, filename: str) -> str:
    """``"image"`` or ``"video"`` for the received file at ``path`` (blocking: it may decode a little).

    Raises:
        UnsupportedMediaError: the input gate refuses it (neither, corrupt, truncated, a bomb, empty).
    """
    from deepfake_client.inputs import detect_kind

    try:
        return detect_kind(path)
    except InvalidInputError as err:
        reason = str(err).replace(str(path), filename or "the upload")
        raise UnsupportedMediaError(reason) from err


async def receive_upload(
    headers: dict[str, str],
    stream: AsyncIterator[bytes],
    *,
    directory: pathlib.Path,
    max_bytes: int,
) -> Upload:
    """Stream the ``file`` part of a ``multipart/form-data`` body to a temporary file in ``directory``.

    Args:
        headers: the request headers (lower-case names).
        stream: the request body, chunk by chunk (Starlette's ``request.stream()``).
        directory: where the temporary file goes (created if missing).
        max_bytes: the most body bytes accepted; more is refused as soon as it arrives.

    Raises:
        UploadTooLargeError: the body is (or says it will be) larger than ``max_bytes``.
        UnsupportedMediaError: not multipart, or the file is not a supported image or video.
        InvalidInputError: no file part, an empty file, more than one file, or malformed multipart.
        ClientGoneError: the client disconnected mid-upload.
    """
    import anyio
    from python_multipart.exceptions import FormParserError
    from python_multipart.multipart import MultipartParser, parse_options_header
    from starlette.requests import ClientDisconnect

    declared_length = headers.get("content-length")
    if declared_length and declared_length.isdigit() and int(declared_length) > max_bytes:
        raise UploadTooLargeError(
            f"the upload is {format_mb(int(declared_length))}; the limit is {format_mb(max_bytes)}"
        )
    kind, options = parse_options_header(headers.get("content-type", ""))
    if kind != b"multipart/form-data" or b"boundary" not in options:
        raise UnsupportedMediaError(
            f"send the file as multipart/form-data in a field named {FILE_FIELD!r} "
            f"(got {kind.decode('latin-1') or 'no content type'})"
        )

    state: dict = {
        "headers": {},
        "header_name": b"",
        "header_value": b"",
        "fd": None,
        "path": None,
        "in_file": False,
        "field_bytes": 0,
        "files": 0,
        "filename": "",
        "content_type": "",
        "size": 0,
    }

    def on_header_field(data: bytes, start: int, end: int) -> None:
        state["header_name"] += data[start:end]

    def on_header_value(data: bytes, start: int, end: int) -> None:
        state["header_value"] += data[start:end]

    def on_header_end() -> None:
        state["headers"][state["header_name"].lower()] = state["header_value"]
        state["header_name"], state["header_value"] = b"", b""

    def on_headers_finished() -> None:
        part_headers = state["headers"]
        state["headers"] = {}
        _, disposition = parse_options_header(part_headers.get(b"content-disposition", b""))
        name = disposition.get(b"name", b"").decode("utf-8", "replace")
        state["in_file"] = name == FILE_FIELD and b"filename" in disposition
        if not state["in_file"]:
            state["field_bytes"] = 0
            return
        state["files"] += 1
        if state["files"] > 1:
            raise InvalidInputError("send one file per request")
        state["filename"] = pathlib.PurePath(disposition[b"filename"].decode("utf-8", "replace")).name[:200]
        state["content_type"] = part_headers.get(b"content-type", b"").decode("latin-1")
        fd, path = _make_temp(directory)
        state["fd"], state["path"] = fd, path

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if not state["in_file"]:
            state["field_bytes"] += end - start
            if state["field_bytes"] > MAX_FIELD_BYTES:
                raise InvalidInputError("a form field is too large")
            return
        chunk = data[start:end]
        # A write of one chunk to the page cache: microseconds, not worth a thread hop.
        os.write(state["fd"], chunk)
        state["size"] += len(chunk)

    def on_part_end() -> None:
        state["in_file"] = False

    parser = MultipartParser(
        options[b"boundary"],
        {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    received = 0
    try:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            async for chunk in stream:
                received += len(chunk)
                if received > max_bytes:
                    raise UploadTooLargeError(f"the upload is over the limit of {format_mb(max_bytes)}")
                parser.write(chunk)
            parser.finalize()
        except ClientDisconnect as err:
            raise ClientGoneError("the client disconnected before the upload was complete") from err
        except FormParserError as err:
            raise InvalidInputError(f"malformed multipart body: {err}") from err
        except OSError as err:  # from mkdir, or the temporary file's open or write (parser callbacks)
            raise storage_error(err) from err
        if state["path"] is None:
            raise InvalidInputError(f"no file in the upload (send it in a form field named {FILE_FIELD!r})")
        os.close(state["fd"])
        state["fd"] = None
        kind = await anyio.to_thread.run_sync(accept_media, state["path"], state["filename"])
        path = state["path"].with_suffix(f".{kind}")
        try:
            os.replace(state["path"], path)
        except OSError as err:
            raise storage_error(err) from err
    except BaseException:
        if state["fd"] is not None:
            os.close(state["fd"])
            state["fd"] = None
        if state["path"] is not None:
            state["path"].unlink(missing_ok=True)
        raise
    return Upload(path, state["filename"] or "upload", state["content_type"], state["size"], kind)


def _make_temp(directory: pathlib.Path) -> tuple[int, pathlib.Path]:
    """A new file named by a random UUID (so renaming it to another suffix cannot collide either)."""
    import uuid

    path = directory / f"upload-{uuid.uuid4().hex}.part"
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600), path
