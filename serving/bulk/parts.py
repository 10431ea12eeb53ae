"""The output folder of ``deepfake-bulk scan``: exactly one row per source, whatever dies.

::

    DIR/bulk.json             what the folder holds (the command, model and target): a re-run checks it
    DIR/parts/part-<id>.jsonl  one file per shard of sources, written by the worker that scanned them
    DIR/verdicts.jsonl        the merge: one row per source, sorted by source (rewritten by each run)

A shard's id is a hash of its sources, so a shard retried after its worker died (or run twice)
writes the same part again, never a second one. A part is written to a temporary name and renamed
(atomic on a POSIX file system, and a single object PUT on an object store): it is either all
there or not there. The merge reads every part and keeps one row per source: a verdict if any
part has one, else the newest error. A re-run skips the sources that already have a final row
(see :func:`final_rows`) and only writes parts for the rest.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import uuid
from collections.abc import Iterable, Sequence

import orjson

from deepfake_client.errors import InvalidInputError

INFO = "bulk.json"
PARTS = "parts"
MERGED = "verdicts.jsonl"
# Error rows a re-run leaves alone: the file itself is bad (2) or missing (3) when reading it
# (stage "input"); an unreachable server (4), a surprise (1), anything the servers answered (stage
# "score": a version unloaded mid-run is "not found" too) and a worker that died on the file
# (stage "worker") are tried again. Rows without a stage (parts of older runs) count as "input".
FINAL_EXIT_CODES = (2, 3)
STAGE_INPUT, STAGE_SCORE, STAGE_WORKER = "input", "score", "worker"


def shard_sources(sources: Sequence[str], size: int) -> list[dict]:
    """Consecutive shards of ``size`` sources, each ``{"part": <id>, "sources": [...]}``."""
    shards = []
    for start in range(0, len(sources), size):
        chunk = list(sources[start : start + size])
        digest = hashlib.sha256("\n".join(chunk).encode()).hexdigest()[:20]
        shards.append({"part": f"part-{digest}.jsonl", "sources": chunk})
    return shards


def open_output(out: str | os.PathLike[str], info: dict, *, create: bool = True) -> pathlib.Path:
    """Create ``out`` (or take an empty folder, or one this command wrote with the same ``info``);
    ``create=False`` only checks.

    Raises:
        InvalidInputError: ``out`` is a file, a folder with other things in it, or the output of
            another command, model or target.
    """
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise InvalidInputError(f"--out {out}: a file, not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not (out / INFO).is_file():
            raise InvalidInputError(
                f"--out {out}: the folder has other files and no {INFO}; give a new or empty folder "
                "(nothing is written into folders deepfake-bulk did not create)"
            )
        try:
            previous = json.loads((out / INFO).read_text())
        except (OSError, ValueError) as err:
            raise InvalidInputError(f"--out {out / INFO}: unreadable ({err})") from err
        changed = sorted(k for k in info if previous.get(k) != info[k])
        if changed:
            raise InvalidInputError(
                f"--out {out}: written with other settings ({', '.join(changed)}); use a new folder"
            )
    if not create:
        return out
    (out / PARTS).mkdir(parents=True, exist_ok=True)
    if not (out / INFO).is_file():
        write_atomically(out / INFO, json.dumps(info, indent=2).encode() + b"\n")
    return out


def write_atomically(path: pathlib.Path, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, fsync, rename over ``path``."""
    tmp = path.with_name(f".tmp-{path.name}-{uuid.uuid4().hex[:8]}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_part(out: pathlib.Path, part: str, lines: Iterable[str]) -> None:
    """One shard's rows (JSON lines) as ``parts/<part>``, all at once."""
    write_atomically(out / PARTS / part, "".join(line + "\n" for line in lines).encode())


def read_parts(out: pathlib.Path) -> list[tuple[float, str, dict]]:
    """Every row of every finished part: ``(part mtime, part name, row)``."""
    rows = []
    folder = out / PARTS
    for path in sorted(folder.glob("part-*.jsonl")) if folder.is_dir() else []:
        mtime = path.stat().st_mtime
        for line in path.read_bytes().splitlines():
            row = orjson.loads(line)
            rows.append((mtime, path.name, row))
    return rows


def merge_rows(out: pathlib.Path) -> dict[str, dict]:
    """One row per source over all parts: a verdict if any, else the newest error row."""
    best: dict[str, tuple[bool, float, dict]] = {}
    for mtime, _, row in read_parts(out):
        key = (("error" not in row), mtime)
        current = best.get(row["source"])
        if current is None or key > current[:2]:
            best[row["source"]] = (key[0], key[1], row)
    return {source: entry[2] for source, entry in best.items()}


def final_rows(merged: dict[str, dict], *, retry_errors: bool = False) -> set[str]:
    """The sources a re-run skips: those with a verdict, and (unless ``retry_errors``) those whose
    error is about the file itself (:data:`FINAL_EXIT_CODES` while reading it)."""
    return {
        source
        for source, row in merged.items()
        if "error" not in row
        or (
            not retry_errors
            and row.get("exit_code") in FINAL_EXIT_CODES
            and row.get("stage", STAGE_INPUT) == STAGE_INPUT
        )
    }


def write_merged(out: pathlib.Path, merged: dict[str, dict]) -> pathlib.Path:
    """``verdicts.jsonl``: the merged rows sorted by source; stray temporary parts removed."""
    data = b"".join(orjson.dumps(merged[s]) + b"\n" for s in sorted(merged))
    write_atomically(out / MERGED, data)
    for stray in (out / PARTS).glob(".tmp-*"):  # left by a worker that died while writing
        stray.unlink(missing_ok=True)
    return out / MERGED
