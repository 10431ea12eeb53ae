"""``deepfake-rollout``: publish, canary, promote, roll back, abort, status (TensorFlow-free)."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error

EPILOG = """\
examples:
  deepfake-rollout publish runs/r2                 version 2 on disk, not served yet
  deepfake-rollout canary                          serve it, wait for AVAILABLE, golden check, label canary
  deepfake-rollout promote                         stable := canary
  deepfake-rollout abort                           drop the canary; stable untouched
  deepfake-rollout rollback                        stable := the previous stable in the release history
  deepfake-rollout status --json                   versions, labels, server states, the last releases

Every change is recorded in <repository>/release-history.jsonl beside models.config.
exit codes: 0 ok, 2 invalid input, 3 not found / repository not writable, 4 server unavailable or
timed out, 5 step refused (golden mismatch, no canary, no earlier stable, another rollout running)
"""


def _add_common(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """The options every command takes; given before or after the command name alike."""

    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--repository",
        default=default(os.environ.get("MODEL_REPOSITORY", "models")),
        help="model repository on this host (default $MODEL_REPOSITORY or ./models)",
    )
    parser.add_argument(
        "--config", default=default(None), help="model config file (default <repository>/models.config)"
    )
    parser.add_argument(
        "--server",
        action="append",
        default=default(None),
        help="TF Serving: grpc://host:8500 (reloads at once), grpcs://... or http(s)://host:8501; repeat "
        "it for every replica that reads the repository (default $DEEPFAKE_SERVER or grpc://127.0.0.1:8500)",
    )
    parser.add_argument(
        "--model-name", default=default(MODEL_NAME), help=f"model name (default {MODEL_NAME})"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=default(300.0),
        help="seconds a version may take to become AVAILABLE (default 300)",
    )
    parser.add_argument(
        "--tls-ca", type=pathlib.Path, default=default(None), help="PEM root certificates for TLS"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=default([]),
        metavar="NAME:VALUE",
        help="header sent with every call, e.g. 'authorization: Bearer $TOKEN' (TF Serving behind a proxy)",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print the result as JSON"
    )
    parser.add_argument("--debug", action="store_true", default=default(False), help="show tracebacks")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-rollout",
        description="Roll model versions out on TF Serving without downtime: publish a version, serve it "
        "and label it canary once it is AVAILABLE and answers its golden batch, promote it to stable, "
        "abort a canary, or roll stable back to the previous stable. Every change is an atomic rewrite "
        "of models.config, recorded in the release history, plus, over gRPC, a HandleReloadConfigRequest.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _add_common(sub, suppress=True)
        return sub

    status = command("status", "versions on disk, in the config and on the server; labels; the last releases")
    status.add_argument("--last", type=int, default=10, help="release records shown (default 10)")
    publish = command("publish", "publish a run folder or SavedModel as a new version (not served)")
    publish.add_argument(
        "source", help="training run (model.keras + run.json) or exported SavedModel directory"
    )
    publish.add_argument("--version", type=int, help="version number (default: highest + 1)")
    publish.add_argument(
        "--server-base-path",
        help="base path the server sees, for a new models.config (e.g. /models/deepfake_detector "
        "in Docker; default: this host's absolute path)",
    )
    publish.add_argument(
        "--mode",
        type=_mode,
        default=0o755,
        help="octal mode of the version's directories; files get it without execute bits (default 755: "
        "TF Serving may run as another user)",
    )
    canary = command("canary", "serve a version, check it, label it canary")
    canary.add_argument("version", nargs="?", type=int, help="version (default: the newest published)")
    canary.add_argument(
        "--force", action="store_true", help="canary a version that was rolled back or aborted before"
    )
    promote = command("promote", "stable := canary; stop serving old versions")
    promote.add_argument(
        "--keep", type=int, default=2, help="stables kept served, the new one included (default 2)"
    )
    rollback = command("rollback", "stable := the previous stable in the release history; drop the canary")
    rollback.add_argument(
        "--force",
        action="store_true",
        help="roll back to a version that has no golden batch (published from elsewhere); a golden "
        "mismatch is still refused",
    )
    command("abort", "drop the canary label and stop serving the canary; stable untouched")
    return parser


def _mode(text: str) -> int:
    try:
        mode = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an octal mode: {text!r}") from None
    if not 0o500 <= mode <= 0o777 or not mode & 0o100:
        raise argparse.ArgumentTypeError(f"{text}: the owner must be able to read and enter directories")
    return mode


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from serving.rollout import Rollout

    servers = []
    try:
        if args.command != "publish":
            from deepfake_client.cli import parse_headers, read_certificates
            from deepfake_client.transport.base import make_transport

            urls = replica_urls(args.server or [os.environ.get("DEEPFAKE_SERVER", "grpc://127.0.0.1:8500")])
            roots = read_certificates(args.tls_ca) if args.tls_ca else None
            headers = parse_headers(args.header)
            servers = [make_transport(url, root_certificates=roots, headers=headers) for url in urls]
        rollout = Rollout(
            repository=pathlib.Path(args.repository),
            servers=servers,
            config_path=pathlib.Path(args.config) if args.config else None,
            model=args.model_name,
            wait_timeout_s=args.timeout,
            log=lambda line: print(f"deepfake-rollout: {line}", file=sys.stderr),
        )
        from training.quiet import quiet_tensorflow  # publishing a run imports TensorFlow

        with quiet_tensorflow(debug=args.debug):
            result = _run(rollout, args)
    except DeepfakeError as err:
        return report_error("deepfake-rollout", err, debug=args.debug)
    finally:
        for server in servers:
            server.close()
    if args.json or args.command == "status":
        import orjson

        sys.stdout.write(
            orjson.dumps(result, option=orjson.OPT_INDENT_2 if not args.json else 0).decode() + "\n"
        )
    else:
        print(" ".join(f"{k}={v}" for k, v in result.items()))
    return 0


def replica_urls(values: list[str]) -> list[str]:
    """One URL per replica: the rollout must reach *every* replica itself (each waits for AVAILABLE,
    answers the golden batch and gets the reload), so a comma list is split, and a balancing
    target (``dns:///...``), which would reach one replica per call, is refused."""
    from deepfake_client.transport.balanced import RESOLVER_PREFIXES

    urls = [u.strip() for value in values for u in value.split(",") if u.strip()]
    balanced = [u for u in urls if u.startswith(RESOLVER_PREFIXES)]
    if balanced:
        raise InvalidInputError(
            f"--server {balanced[0]}: a rollout names every replica (--server grpc://pod-0.svc:8500 "
            "--server grpc://pod-1.svc:8500 ...), not a balancing target that reaches one replica per call"
        )
    return urls


def _run(rollout, args: argparse.Namespace) -> dict:  # type: ignore[no-untyped-def]
    if args.command == "status":
        if args.last < 0:
            raise InvalidInputError(f"--last must be 0 or more, got {args.last}")
        return rollout.status(last=args.last)
    if args.command == "publish":
        version = rollout.publish(
            args.source, version=args.version, server_base_path=args.server_base_path, mode=args.mode
        )
        return {"version": version}
    if args.command == "canary":
        return {"canary": rollout.canary(args.version, force=args.force)}
    if args.command == "promote":
        return {"stable": rollout.promote(keep=args.keep)}
    if args.command == "abort":
        return {"aborted": rollout.abort(), "stable": rollout.entry().labels.get("stable")}
    return {"stable": rollout.rollback(force=args.force)}


if __name__ == "__main__":
    sys.exit(main())
