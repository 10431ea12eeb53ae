"""``deepfake-rollout``: publish, canary, promote, roll back, status (TensorFlow-free)."""

from __future__ import annotations

import argparse
import os
import pathlib
import sys

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import DeepfakeError, report_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-rollout",
        description="Roll model versions out on TF Serving without downtime: publish a version, serve it "
        "and label it canary once it is AVAILABLE and answers its golden batch, promote it to stable, "
        "or roll stable back. Every change is an atomic rewrite of models.config plus, over gRPC, a "
        "HandleReloadConfigRequest.",
    )
    parser.add_argument(
        "--repository",
        default=os.environ.get("MODEL_REPOSITORY", "models"),
        help="model repository on this host (default $MODEL_REPOSITORY or ./models)",
    )
    parser.add_argument("--config", help="model config file (default <repository>/models.config)")
    parser.add_argument(
        "--server",
        action="append",
        help="TF Serving: grpc://host:8500 (reloads at once) or http://host:8501; repeat it for "
        "every replica that reads the repository (default $DEEPFAKE_SERVER or grpc://127.0.0.1:8500)",
    )
    parser.add_argument("--model-name", default=MODEL_NAME)
    parser.add_argument(
        "--timeout",
        type=float,
        default=300.0,
        help="seconds a version may take to become AVAILABLE (default 300)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="versions on disk, in the config and on the server; labels")
    publish = commands.add_parser("publish", help="publish a run folder or SavedModel as a new version")
    publish.add_argument(
        "source", help="training run (model.keras + run.json) or exported SavedModel directory"
    )
    publish.add_argument("--version", type=int, help="version number (default: highest + 1)")
    publish.add_argument(
        "--server-base-path",
        help="base path the server sees, for a new models.config (e.g. /models/deepfake_detector "
        "in Docker; default: this host's absolute path)",
    )
    canary = commands.add_parser("canary", help="serve a version, check it, label it canary")
    canary.add_argument("version", nargs="?", type=int, help="version (default: the newest published)")
    promote = commands.add_parser("promote", help="stable := canary; retire old versions")
    promote.add_argument(
        "--keep", type=int, default=2, help="served versions to keep up to stable (default 2)"
    )
    commands.add_parser("rollback", help="stable back to the previous version; drop the canary")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from serving.rollout import Rollout

    servers = []
    try:
        if args.command != "publish":
            from deepfake_client.transport.base import make_transport

            urls = args.server or [os.environ.get("DEEPFAKE_SERVER", "grpc://127.0.0.1:8500")]
            servers = [make_transport(url) for url in urls]
        rollout = Rollout(
            repository=pathlib.Path(args.repository),
            servers=servers,
            config_path=pathlib.Path(args.config) if args.config else None,
            model=args.model_name,
            wait_timeout_s=args.timeout,
            log=lambda line: print(f"deepfake-rollout: {line}", file=sys.stderr),
        )
        if args.command == "status":
            result: object = rollout.status()
        elif args.command == "publish":
            result = {
                "version": rollout.publish(
                    args.source, version=args.version, server_base_path=args.server_base_path
                )
            }
        elif args.command == "canary":
            result = {"canary": rollout.canary(args.version)}
        elif args.command == "promote":
            result = {"stable": rollout.promote(keep=args.keep)}
        else:
            result = {"stable": rollout.rollback()}
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
        print(" ".join(f"{k}={v}" for k, v in result.items()))  # type: ignore[union-attr]
    return 0


if __name__ == "__main__":
    sys.exit(main())
