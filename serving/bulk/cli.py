"""``deepfake-bulk``: scan or prepare many videos on a Ray cluster (a local one by default).

    deepfake-bulk scan videos/ 's3://bucket/batch-7/' --manifest more.txt \\
        --server grpc://tfs-0:8500 --server grpc://tfs-1:8500 --out results/ --workers 8
    deepfake-bulk prepare --dataset dfdc /data/dfdc crops/ --workers 8

Ray is imported only once a command runs, so ``--help`` is instant; Ray's own logs stay off the
terminal unless ``--debug``. Exit codes as ``deepfake-scan`` (Contract 5): the worst row's.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deepfake_client.errors import InvalidInputError

# The scoring options of deepfake-scan, taken from its own parser (same names, defaults, help).
CLIENT_OPTIONS = (
    "model",
    "version",
    "label",
    "latest",
    "canary_share",
    "faces",
    "frames",
    "fps",
    "aggregation",
    "threshold",
    "detector",
    "encoding",
    "batch_size",
    "timeout",
    "retry_for",
    "retries",
    "tls_ca",
    "header",
)
EPILOG = """\
Output (scan): DIR/parts/part-*.jsonl, one per shard of sources, each written whole by the worker
that scanned it, and DIR/verdicts.jsonl, the merge: one row per source, a verdict or an error
({"source", "error", "exit_code", "stage"}), exactly once even when workers or replicas die; a
source that kills its worker on every try gets its own error row ("stage": "worker"). Running the
same command again skips the sources that have a verdict, or an error about the file itself
(exit 2 or 3 while reading it, "stage": "input"); other errors are tried again (all errors:
--retry-errors).

Ray: a local cluster unless --address (or RAY_ADDRESS) names one, e.g. a KubeRay RayJob's.
"""


def build_parser() -> argparse.ArgumentParser:
    from deepfake_client.cli import build_parser as scan_parser

    parser = argparse.ArgumentParser(
        prog="deepfake-bulk",
        description="Bulk jobs on Ray: scan many videos with the detector, or prepare a training set.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scan = commands.add_parser(
        "scan",
        help="score every source once, into a folder of JSON-lines parts (resumable)",
        description="Score videos and images on a pool of Ray workers, each with one client.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    scan.add_argument("sources", nargs="*", help="files, folders (recursive), globs or URIs (s3://, gs://)")
    scan.add_argument(
        "--manifest", action="append", default=[], metavar="FILE", help="a file of paths or URIs, one a line"
    )
    scan.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="URL",
        help="a TF Serving replica (repeat for several, or dns:///host:port; default env DEEPFAKE_SERVER)",
    )
    scan.add_argument("--out", required=True, help="output folder (new, empty, or a previous run's: resumed)")
    _engine_options(scan)
    scan.add_argument("--shard-size", type=int, help="sources per part (default: about 4 per worker, <= 64)")
    scan.add_argument("--retry-errors", action="store_true", help="try every error row again on a re-run")
    scan.add_argument(
        "--pushgateway",
        metavar="URL",
        help="also push progress to this Prometheus Pushgateway (it is always in DIR/progress.prom)",
    )
    client = scan.add_argument_group("scoring (as deepfake-scan)")
    for action in scan_parser()._actions:
        if action.dest in CLIENT_OPTIONS:
            client._add_action(action)
    prepare = commands.add_parser(
        "prepare",
        help="crop a dataset's faces on Ray (deepfake-prepare's options; see deepfake-bulk prepare --help)",
        add_help=False,
    )
    prepare.add_argument("options", nargs=argparse.REMAINDER)
    return parser


def _engine_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=2, help="Ray workers, one client each (default 2)")
    parser.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPUs each worker reserves")
    parser.add_argument("--address", help="a Ray cluster (default env RAY_ADDRESS, else a local one)")
    parser.add_argument("--json", action="store_true", help="the summary as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--debug", action="store_true", help="tracebacks, Ray's and native libraries' logs")


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepfake-bulk``; return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prepare"]:
        return _prepare(argv[1:])
    args = build_parser().parse_args(argv)
    from deepfake_client.quiet import run_console_command

    return run_console_command(
        "deepfake-bulk",
        lambda: _scan(args),
        debug=args.debug,
        interrupted="interrupted (run the same command again to resume)",
    )


def _scan(args: argparse.Namespace) -> int:
    import json

    from deepfake_client.cli import parse_headers, read_certificates
    from serving.bulk.scan import run_scan

    if args.workers < 1 or args.cpus_per_worker <= 0 or (args.shard_size is not None and args.shard_size < 1):
        raise InvalidInputError("--workers, --cpus-per-worker and --shard-size must be positive")
    if not args.sources and not args.manifest:
        raise InvalidInputError("name sources (files, folders, globs, URIs) or a --manifest")
    servers = args.server or [os.environ.get("DEEPFAKE_SERVER", "grpc://localhost:8500")]
    client = {
        "url": ",".join(servers),
        "model": args.model,
        "version": args.version,
        "label": None if args.latest else args.label,
        "canary_share": args.canary_share,
        "timeout_s": args.timeout,
        "retry_for_s": args.retry_for,
        "retries": args.retries,
        "batch_size": args.batch_size,
        "encoding": args.encoding,
        "detector": args.detector,
        "frames": args.frames,
        "per_second": args.fps,
        "aggregation": args.aggregation,
        "threshold": args.threshold,
        "root_certificates": read_certificates(args.tls_ca) if args.tls_ca else None,
        "headers": parse_headers(args.header),
    }
    summary = run_scan(
        args.sources,
        args.out,
        client=client,
        manifests=args.manifest,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        shard=args.shard_size,
        faces=args.faces,
        retry_errors=args.retry_errors,
        address=args.address,
        debug=args.debug,
        progress=not args.quiet,
        pushgateway=args.pushgateway,
    )
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"deepfake-bulk scan: {summary['verdicts']} verdicts, {summary['errors']} errors in "
            f"{summary['out']}; this run scanned {summary['scanned']} ({summary['failed']} failed), skipped "
            f"{summary['skipped']} already done, {summary['seconds']} s, {summary['rate_per_s']} files/s"
        )
    if "engine_error" in summary:
        print(
            f"deepfake-bulk: error (exit 1): the engine gave up: {summary['engine_error']}; "
            "run the same command again to resume",
            file=sys.stderr,
        )
    return summary["exit_code"]


def _prepare(argv: list[str]) -> int:
    from serving.bulk.prepare import prepare_main

    return prepare_main(argv)


if __name__ == "__main__":
    sys.exit(main())
