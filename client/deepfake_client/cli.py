"""``deepfake-scan``: score videos and images from a shell.

    deepfake-scan clip.mp4 photos/ 'uploads/**/*.mp4' --server http://tfserving:8501 --json

Files, folders (recursive) and globs. Results on stdout: a table, JSON lines (``--json``) or the
Kaggle CSV (``--csv``: ``filename,label`` where label is P(fake); a file with no face gets 0.5,
the uninformed prior). Progress and errors on stderr. One bad file is reported and the rest go on;
the exit code is then that of the worst failure (Contract 5). ``--workers N`` decodes and detects
the next N files while the current one is being scored.
"""

from __future__ import annotations

import argparse
import glob
import os
import pathlib
import sys
from collections import deque
from collections.abc import Iterator, Sequence

from deepfake_client.contract import DEFAULT_DETECTOR, STABLE_LABEL
from deepfake_client.errors import DeepfakeError, InvalidInputError, NotFoundError, report_error

DEFAULT_SERVER = "grpc://localhost:8500"
NO_FACE_CSV_SCORE = 0.5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-scan", description="Score videos and images with the deepfake detector on TF Serving."
    )
    parser.add_argument("paths", nargs="+", help="video or image files, folders (recursive) or globs")
    parser.add_argument(
        "--server",
        default=os.environ.get("DEEPFAKE_SERVER", DEFAULT_SERVER),
        help="grpc://host:8500, grpcs://..., http://host:8501 or https://... (env DEEPFAKE_SERVER)",
    )
    parser.add_argument("--model", default=None, help="model name (default: deepfake_detector)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="score with this model version")
    which.add_argument(
        "--label",
        default=STABLE_LABEL,
        help="score with the version under this label (default: stable; while the model has no stable "
        "label, the latest version, with a warning)",
    )
    which.add_argument(
        "--latest", action="store_true", help="score with the latest version, whatever its labels"
    )
    parser.add_argument(
        "--canary-share", type=float, default=0.0, help="fraction of files sent to the canary label"
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--json", action="store_true", help="JSON lines on stdout")
    output.add_argument("--csv", action="store_true", help="Kaggle CSV (filename,label=P(fake)) on stdout")
    parser.add_argument("--faces", action="store_true", help="with --json: include every face")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video (default 32)")
    parser.add_argument("--fps", type=float, default=None, help="sample this many frames per second instead")
    parser.add_argument("--aggregation", choices=("confident", "mean", "max"), default="confident")
    parser.add_argument("--threshold", type=float, default=None, help="override the version's threshold")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"face detector: centerface, haar or yunet:/model.onnx (default {DEFAULT_DETECTOR}, the one "
        "training data is prepared with)",
    )
    parser.add_argument("--encoding", choices=("uint8", "jpeg"), default="uint8", help="how crops are sent")
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
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def expand_paths(args: Sequence[str]) -> Iterator[pathlib.Path | DeepfakeError]:
    """The media files named by ``args``: files as they are, folders recursively, globs expanded.

    Yields an error in place of an argument that names nothing usable, so the rest go on.
    """
    from deepfake_client.video import is_image, is_video

    def media(folder: pathlib.Path) -> list[pathlib.Path]:
        return sorted(p for p in folder.rglob("*") if p.is_file() and (is_image(p) or is_video(p)))

    for arg in args:
        path = pathlib.Path(arg)
        if path.is_file():
            yield path
        elif path.is_dir():
            found = media(path)
            if not found:
                yield InvalidInputError(f"{arg}: no image or video files in this folder")
            yield from found
        elif any(c in arg for c in "*?["):
            matches = sorted(glob.glob(arg, recursive=True))
            files = [pathlib.Path(m) for m in matches if pathlib.Path(m).is_file()]
            files += [f for m in matches if pathlib.Path(m).is_dir() for f in media(pathlib.Path(m))]
            if not files:
                yield NotFoundError(f"{arg}: the pattern matches no file")
            yield from files
        else:
            yield NotFoundError(f"{arg}: no such file or folder")


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
    try:
        return _scan(args)
    except DeepfakeError as err:
        return report_error("deepfake-scan", err, debug=args.debug)
    except KeyboardInterrupt:
        print("deepfake-scan: interrupted", file=sys.stderr)
        return 130


def _scan(args: argparse.Namespace) -> int:
    from concurrent.futures import Future, ThreadPoolExecutor

    from tqdm import tqdm

    from deepfake_client.client import DetectorClient
    from deepfake_client.contract import MODEL_NAME, NO_FACE
    from deepfake_client.verdict import Verdict, format_table

    if args.workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {args.workers}")
    root_certificates = read_certificates(args.tls_ca) if args.tls_ca else None
    client = DetectorClient(
        args.server,
        model=args.model or MODEL_NAME,
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
        threshold=args.threshold,
        root_certificates=root_certificates,
        headers=parse_headers(args.header),
    )
    worst = 0
    verdicts: list[Verdict] = []
    with client:
        client.info()  # fail once, early, if the server or the model is not there
        if args.csv:
            print("filename,label", flush=True)
        items = list(expand_paths(args.paths))
        progress = tqdm(total=len(items), unit="file", file=sys.stderr, disable=True if args.quiet else None)
        with ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="deepfake-prepare") as pool:
            pending: deque[tuple[object, Future | None]] = deque()
            queue = iter(items)

            def refill() -> None:
                while len(pending) < args.workers + 1:
                    item = next(queue, None)
                    if item is None:
                        return
                    future = None if isinstance(item, DeepfakeError) else pool.submit(client.prepare, item)
                    pending.append((item, future))

            refill()
            while pending:
                item, future = pending.popleft()
                refill()
                try:
                    if isinstance(item, DeepfakeError):
                        raise item
                    verdict = client.score(future.result())  # type: ignore[union-attr]
                except Exception as err:  # a bug or a library's surprise too: one line, and go on
                    worst = max(worst, report_error("deepfake-scan", err, debug=args.debug, where=str(item)))
                else:
                    if args.json:
                        import orjson

                        print(orjson.dumps(verdict.to_dict(faces=args.faces)).decode(), flush=True)
                    elif args.csv:
                        score = NO_FACE_CSV_SCORE if verdict.label == NO_FACE else verdict.score
                        print(f"{pathlib.Path(verdict.source).name},{score:.6f}", flush=True)
                    else:
                        verdicts.append(verdict)
                progress.update(1)
        progress.close()
    if verdicts:
        print(format_table(verdicts))
    return worst


if __name__ == "__main__":
    sys.exit(main())
