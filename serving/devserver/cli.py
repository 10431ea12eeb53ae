"""``deepfake-devserver``: TF Serving's command line, served by the dev server.

One command line works for both servers::

    deepfake-devserver --port=8500 --rest_api_port=8501 --model_config_file=models/models.config \
        --model_config_file_poll_wait_seconds=5 --monitoring_config_file=serving/monitoring.config

``--host`` (default 127.0.0.1) and ``--max_request_bytes`` exist only here.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from deepfake_client.errors import DeepfakeError


def _bool(text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (TF Serving's flag names and defaults)."""
    p = argparse.ArgumentParser(prog="deepfake-devserver", description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, default=8500, help="gRPC port (0 picks a free one)")
    p.add_argument("--rest_api_port", type=int, default=0, help="REST port (0: no REST API)")
    p.add_argument("--rest_api_num_threads", type=int, default=16)
    p.add_argument("--rest_api_timeout_in_ms", type=int, default=30000)
    p.add_argument("--model_config_file", default="")
    p.add_argument("--model_config_file_poll_wait_seconds", type=int, default=0)
    p.add_argument("--model_name", default="default")
    p.add_argument("--model_base_path", default="")
    p.add_argument("--file_system_poll_wait_seconds", type=int, default=1)
    p.add_argument("--enable_batching", type=_bool, nargs="?", const=True, default=False)
    p.add_argument("--batching_parameters_file", default="")
    p.add_argument("--monitoring_config_file", default="")
    p.add_argument("--ssl_config_file", default="", help="SSLConfig text proto: TLS for gRPC, as TF Serving")
    p.add_argument(
        "--allow_version_labels_for_unavailable_models", type=_bool, nargs="?", const=True, default=False
    )
    p.add_argument("--max_num_load_retries", type=int, default=5)
    p.add_argument("--load_retry_interval_micros", type=int, default=60_000_000)
    p.add_argument(
        "--num_load_threads", type=int, default=0, help="accepted for compatibility; loads run in parallel"
    )
    p.add_argument("--host", default="127.0.0.1", help="bind address (dev server only)")
    p.add_argument("--max_request_bytes", type=int, default=1 << 30, help="REST body limit (dev server only)")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def read_ssl_config(path: str):  # type: ignore[no-untyped-def]
    """Parse TF Serving's ``--ssl_config_file`` (a text ``SSLConfig`` holding PEM contents)."""
    from google.protobuf import text_format

    from deepfake_client._proto import tfs_pb2
    from deepfake_client.errors import InvalidInputError

    try:
        config = text_format.Parse(pathlib.Path(path).read_text(), tfs_pb2.SSLConfig())
    except (OSError, text_format.ParseError) as err:
        raise InvalidInputError(f"Invalid protobuf file: '{path}'") from err
    if not config.server_key or not config.server_cert:
        raise InvalidInputError(f"{path}: an SSLConfig needs server_key and server_cert")
    return config


def main(argv: list[str] | None = None) -> int:
    """Run the dev server until SIGTERM; 0 on a clean shutdown."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.port and args.port == args.rest_api_port:
        print("error: --port and --rest_api_port cannot be the same", file=sys.stderr)
        return 2
    try:
        from serving.devserver.server import DevServer, ServerOptions
        from serving.devserver.status import ServingError

        batching = None
        if args.enable_batching:
            from serving.devserver.batching import BatchingParameters, read_batching_parameters

            batching = (
                read_batching_parameters(args.batching_parameters_file)
                if args.batching_parameters_file
                else BatchingParameters()
            )
        metrics_path = None
        if args.monitoring_config_file:
            from serving.devserver.metrics import read_monitoring_config

            enabled, path = read_monitoring_config(args.monitoring_config_file)
            metrics_path = path if enabled else None
        ssl = read_ssl_config(args.ssl_config_file) if args.ssl_config_file else None
        options = ServerOptions(
            host=args.host,
            port=args.port,
            rest_api_port=args.rest_api_port,
            rest_api_num_threads=args.rest_api_num_threads,
            rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
            model_config_file=args.model_config_file,
            model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
            model_name=args.model_name,
            model_base_path=args.model_base_path,
            file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
            allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
            max_num_load_retries=args.max_num_load_retries,
            ssl=ssl,
            load_retry_interval_micros=args.load_retry_interval_micros,
            batching=batching,
            metrics_path=metrics_path,
            max_request_bytes=args.max_request_bytes,
        )
        server = DevServer(options)
        server.start()
    except (ServingError, DeepfakeError, OSError) as err:
        if args.debug:
            raise
        message = getattr(err, "message", None) or str(err)
        print(f"error: {message}", file=sys.stderr)
        return getattr(err, "exit_code", 1)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
