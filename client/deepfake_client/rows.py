"""The rows ``deepfake-scan`` writes: one per input, a verdict or an error, as soon as it is known.

Three formats on stdout, each flushed row by row:

- a table (``verdict.format_table``'s columns): the header before the first row, then a row per
  verdict; an error is the one line on stderr only;
- JSON lines: a verdict's ``to_dict()``, or ``{"source", "error", "exit_code"}`` for a file that
  got no verdict;
- CSV ``filename,label,error``: ``label`` is P(fake) (0.5, the uninformed prior, when no face or no
  verdict), ``error`` is empty for a verdict. ``cut -d, -f1,2`` of a run without errors is the
  Kaggle ``filename,label`` submission.

``scored_sources`` reads a previous JSON-lines output back for ``--resume``: the sources that got
a verdict (error rows are tried again).
"""

from __future__ import annotations

import csv
import os
import pathlib
import sys
from collections.abc import Callable
from typing import Any, TextIO

from deepfake_client.contract import NO_FACE
from deepfake_client.errors import InvalidInputError, NotFoundError
from deepfake_client.verdict import Verdict, format_table

UNKNOWN_CSV_SCORE = 0.5  # no face, or no verdict: the uninformed prior


def source_key(source: str | os.PathLike[str]) -> str:
    """How ``--resume`` compares sources: the absolute, normalised path."""
    return os.path.normpath(os.path.abspath(os.fspath(source)))


class RowWriter:
    """Writes each input's row to ``out`` the moment it is known.

    Args:
        fmt: ``table``, ``json`` or ``csv``.
        faces: JSON rows include every face.
        write: how a line reaches ``out`` (a progress bar's ``write``, so the bar is not torn).
    """

    def __init__(
        self,
        fmt: str,
        *,
        faces: bool = False,
        out: TextIO | None = None,
        write: Callable[[str], None] | None = None,
    ) -> None:
        if fmt not in ("table", "json", "csv"):
            raise InvalidInputError(f"unknown output format {fmt!r}")
        self.fmt = fmt
        self.faces = faces
        self.out = out or sys.stdout
        self._write = write or self._print
        self._header_done = False

    def _print(self, line: str) -> None:
        print(line, file=self.out, flush=True)

    def _header(self, header: str) -> None:
        if not self._header_done:
            self._header_done = True
            self._write(header)

    def _csv_line(self, *cells: str) -> str:
        import io

        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="").writerow(cells)
        return buffer.getvalue()

    def start(self) -> None:
        """CSV's header comes first, even when no file gets a row."""
        if self.fmt == "csv":
            self._header("filename,label,error")

    def verdict(self, verdict: Verdict) -> None:
        if self.fmt == "json":
            import orjson

            self._write(orjson.dumps(verdict.to_dict(faces=self.faces)).decode())
        elif self.fmt == "csv":
            score = UNKNOWN_CSV_SCORE if verdict.label == NO_FACE or verdict.score is None else verdict.score
            self._write(self._csv_line(pathlib.Path(verdict.source).name, f"{score:.6f}", ""))
        else:
            header, _, rows = format_table([verdict]).partition("\n")
            self._header(header)
            self._write(rows)

    def error(self, source: str, message: str, exit_code: int, **extra: Any) -> None:
        """The row of a file that got no verdict (the table has none: its stderr line is the row);
        ``extra`` keys go into JSON rows only."""
        if self.fmt == "json":
            import orjson

            row = {"source": source, "error": message, "exit_code": exit_code, **extra}
            self._write(orjson.dumps(row).decode())
        elif self.fmt == "csv":
            name = pathlib.Path(source).name or source
            self._write(self._csv_line(name, f"{UNKNOWN_CSV_SCORE:.6f}", message))


def scored_sources(path: str | pathlib.Path) -> set[str]:
    """The sources (``source_key``) with a verdict in the JSON-lines file at ``path``.

    Rows with an ``error`` are not counted, so their files are tried again; a line torn by a
    crash, or one that is not a row, is ignored.

    Raises:
        NotFoundError: no file at ``path``.
        InvalidInputError: it cannot be read.
    """
    import orjson

    path = pathlib.Path(path)
    try:
        text = path.read_bytes()
    except FileNotFoundError as err:
        raise NotFoundError(f"--resume {path}: no such file") from err
    except OSError as err:
        raise InvalidInputError(f"--resume {path}: cannot read it: {err.strerror or err}") from err
    done = set()
    for line in text.splitlines():
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(row, dict) and isinstance(row.get("source"), str) and "error" not in row:
            done.add(source_key(row["source"]))
    return done
