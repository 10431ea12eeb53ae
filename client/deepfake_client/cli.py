"""``deepfake-scan``: score videos and images from a shell.

    deepfake-scan clip.mp4 photos/ 'uploads/**/*.mp4' --server http://tfserving:8501 --json

Files, folders (recursive) and globs; every regular file gets a row, a verdict or an error
(see ``rows.py``), the moment it is known: a table, JSON lines (``--json``) or CSV (``--csv``).
Whether a file is an image or a video is decided from its content (``inputs.detect_kind``).
Progress and errors on stderr, one line per failed file. One bad file is reported and the rest go
on; the exit code is then that of the worst failure (Contract 5). ``--resume FILE`` skips the files
a previous ``--json`` output already has a verdict for. ``--workers N`` decodes and detects the
next N files while the current one is being scored. Native libraries (OpenCV, FFmpeg, libpng) stay
silent unless ``--debug``.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import sys
from collections import deque
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from deepfake_client.contract import DEFAULT_DETECTOR, MODEL_NAME, STABLE_LABEL
from deepfake_client.errors import (
    DeepfakeError,
    InvalidInputError,
    NotFoundError,
    error_message,
    report_error,
)

DEFAULT_SERVER = "grpc://localhost:8500"
EPILOG = """\
examples:
  deepfake-scan clip.mp4 photos/ --server grpc://tfserving:8500
  deepfake-scan uploads/ --server http://tfserving:8501 --json > verdicts.jsonl
  deepfake-scan uploads/ --json --resume verdicts.jsonl >> verdicts.jsonl   # go on after a stop
  deepfake-scan 'videos/**/*.mp4' --csv > scores.csv

Every regular file named, found in a folder or matched gets one row: a verdict, or an error (one
line on stderr; {"source", "error", "exit_code"} with --json; filename,0.5,error with --csv).
Images and videos are told apart by their content, not their names; an animated GIF is a video.

exit codes (the worst file's):
  0  every file scored
  1  an unexpected error (--debug shows the traceback)
  2  invalid input: not an image or a video, corrupt, truncated or too large; a bad option
  3  not found: a file, the model, a version or a label
  4  the server is unavailable or timed out
  130  interrupted (Ctrl-C)
"""


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default after its help (unless it is none or the help says it); the epilog keeps
    its lines."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if (
            not action.option_strings
            or "(default" in text
            or action.default in (None, False, [], argparse.SUPPRESS)
        ):
            return text
        return text + " (default: %(default)s)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-scan",
        description="Score videos and images with the deepfake detector on TF Serving.",
        epilog=EPILOG,
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("paths", nargs="+", help="video or image files, folders (recursive) or globs")
    parser.add_argument(
        "--server",
        default=os.environ.get("DEEPFAKE_SERVER", DEFAULT_SERVER),
        help="grpc://host:8500, grpcs://..., http://host:8501 or https://... (env DEEPFAKE_SERVER)",
    )
    parser.add_argument("--model", default=MODEL_NAME, help="model name")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="score with this model version")
    which.add_argument(
        "--label",
        default=STABLE_LABEL,
        help="score with the version under this label (while the model has no stable label: the latest "
        "version, with a warning)",
    )
    which.add_argument(
        "--latest", action="store_true", help="score with the latest version, whatever its labels"
    )
    parser.add_argument(
        "--canary-share", type=float, default=0.0, help="fraction of files sent to the canary label"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON lines on stdout (default: a table)")
    output.add_argument(
        "--csv",
        action="store_true",
        help="CSV filename,label,error on stdout (label: P(fake), 0.5 if unknown)",
    )
    parser.add_argument(
        "--resume",
        metavar="FILE",
        type=pathlib.Path,
        help="skip the files that already have a verdict in FILE (a previous --json output); error rows "
        "are tried again",
    )
    parser.add_argument("--faces", action="store_true", help="with --json: include every face")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument("--fps", type=float, default=None, help="sample this many frames per second instead")
    parser.add_argument(
        "--adaptive",
        action="store_true",
        help="send each person's faces a few at a time and stop once the verdict is clear (the same labels, "
        "fewer faces sent; scores move a little)",
    )
    parser.add_argument(
        "--aggregation",
        choices=("confident", "mean", "max"),
        default="confident",
        help="how face scores make a file's score",
    )
    parser.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="override the version's threshold (default: the version's)",
    )
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help="face detector: centerface, haar or yunet:/model.onnx (the default is the one training data is "
        "prepared with)",
    )
    parser.add_argument(
        "--encoding",
        choices=("auto", "uint8", "png", "jpeg"),
        default="auto",
        help="how crops are sent (default auto: the uint8 tensor over gRPC, lossless PNG over REST; "
        "jpeg is lossy)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="faces per request")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call")
    parser.add_argument(
        "--retry-for",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="ride out an unreachable server (a restart) this long before a file fails (default 30; 0: no "
        "waiting)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        help="also cap the retries of one call (default: --retry-for decides)",
    )
    parser.add_argument("--workers", type=int, default=1, help="files prepared ahead while one is scored")
    parser.add_argument("--tls-ca", type=pathlib.Path, help="PEM file of root certificates for TLS")
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="NAME:VALUE",
        help="header sent with every call, e.g. 'authorization: Bearer $TOKEN'",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar, no --resume note")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and the native libraries' own messages"
    )
    return parser


@dataclass(frozen=True)
class Unusable:
    """An argument that names no file to scan: its row is an error."""

    source: str
    error: DeepfakeError


def expand_paths(args: Sequence[str]) -> Iterator[pathlib.Path | Unusable]:
    """The files named by ``args``: files as they are, folders recursively, globs expanded.

    Every regular file is yielded, whatever its name: the input gate (``inputs.detect_kind``)
    decides later, from the content, whether it is an image, a video or neither. An argument that
    names nothing usable yields an :class:`Unusable` in its place, so the rest go on.
    """

    def files(folder: pathlib.Path) -> list[pathlib.Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file())

    for arg in args:
        path = pathlib.Path(arg)
        if path.is_file():
            yield path
        elif path.is_dir():
            found = files(path)
            if not found:
                yield Unusable(arg, InvalidInputError(f"{arg}: no files in this folder"))
            yield from found
        elif path.exists():
            yield Unusable(arg, InvalidInputError(f"{arg}: not a regular file"))
        elif any(c in arg for c in "*?["):
            matches = sorted(glob.glob(arg, recursive=True))
            found = [pathlib.Path(m) for m in matches if pathlib.Path(m).is_file()]
            found += [f for m in matches if pathlib.Path(m).is_dir() for f in files(pathlib.Path(m))]
            if not found:
                yield Unusable(arg, NotFoundError(f"{arg}: the pattern matches no file"))
            yield from found
        else:
            yield Unusable(arg, NotFoundError(f"{arg}: no such file or folder"))


def parse_headers(values: Sequence[str]) -> dict[str, str]:
    headers = {}
    for value in values:
        name, sep, text = value.partition(":")
        if not sep or not name.strip():
            raise InvalidInputError(f"--header wants NAME:VALUE, got {value!r}")
        headers[name.strip().lower()] = text.strip()
    return headers


def read_certificates(path: pathlib.Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as err:
        raise NotFoundError(f"--tls-ca {path}: no such file") from err
    except OSError as err:
        raise InvalidInputError(f"--tls-ca {path}: cannot read it: {err.strerror or err}") from err


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepfake-scan``; return the exit code."""
    args = build_parser().parse_args(argv)
    from deepfake_client.quiet import run_console_command

    return run_console_command("deepfake-scan", lambda: _scan(args), debug=args.debug)


def _scan(args: argparse.Namespace) -> int:
    from concurrent.futures import Future, ThreadPoolExecutor

    from tqdm import tqdm

    from deepfake_client.client import DetectorClient
    from deepfake_client.rows import RowWriter, scored_sources, source_key

    if args.workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {args.workers}")
    root_certificates = read_certificates(args.tls_ca) if args.tls_ca else None
    done = scored_sources(args.resume) if args.resume else set()
    client = DetectorClient(
        args.server,
        model=args.model,
        version=args.version,
        label=None if args.latest else args.label,
        canary_share=args.canary_share,
        timeout_s=args.timeout,
        retry_for_s=args.retry_for,
        retries=args.retries,
        batch_size=args.batch_size,
        encoding=args.encoding,
        detector=args.detector,
        frames=args.frames,
        per_second=args.fps,
        aggregation=args.aggregation,
        sampling="adaptive" if args.adaptive else "all",
        threshold=args.threshold,
        root_certificates=root_certificates,
        headers=parse_headers(args.header),
    )
    worst = 0
    with client:
        client.info()  # fail once, early, if the server or the model is not there
        items = list(expand_paths(args.paths))
        if done:
            before = len(items)
            items = [i for i in items if isinstance(i, Unusable) or source_key(i) not in done]
            if not args.quiet:
                print(
                    f"deepfake-scan: --resume: {before - len(items)} files already have a verdict in "
                    f"{args.resume}, skipped",
                    file=sys.stderr,
                )
        progress = tqdm(total=len(items), unit="file", file=sys.stderr, disable=True if args.quiet else None)
        fmt = "json" if args.json else "csv" if args.csv else "table"
        rows = RowWriter(fmt, faces=args.faces, write=lambda line: progress.write(line, file=sys.stdout))
        rows.start()
        with ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="deepfake-prepare") as pool:
            pending: deque[tuple[pathlib.Path | Unusable, Future | None]] = deque()
            queue = iter(items)

            def refill() -> None:
                while len(pending) < args.workers + 1:
                    item = next(queue, None)
                    if item is None:
                        return
                    future = None if isinstance(item, Unusable) else pool.submit(client.prepare, item)
                    pending.append((item, future))

            refill()
            while pending:
                item, future = pending.popleft()
                refill()
                source = item.source if isinstance(item, Unusable) else str(item)
                try:
                    if isinstance(item, Unusable):
                        raise item.error
                    verdict = client.score(future.result())  # type: ignore[union-attr]
                except Exception as err:  # a bug or a library's surprise too: one line, a row, and go on
                    with progress.external_write_mode(file=sys.stderr):
                        code = report_error("deepfake-scan", err, debug=args.debug, where=source)
                    worst = max(worst, code)
                    rows.error(source, error_message(err, where=source), code)
                else:
                    rows.verdict(verdict)
                progress.update(1)
        progress.close()
    return worst


if __name__ == "__main__":
    sys.exit(main())
