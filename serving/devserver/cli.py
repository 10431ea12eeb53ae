"""``deepfake-devserver``: TF Serving's command line, served by the dev server.

A TF-Serving-compatible server for development and tests on machines without Docker: the same
model repository, models.config, flags, REST and gRPC APIs. Production runs the real
tensorflow_model_server; a host without Docker can run it from TF Serving's APT package
(tensorflow-model-server, see https://www.tensorflow.org/tfx/serving/setup) with the same
repository, config file and flags. One command line works for both::

    deepfake-devserver --port=8500 --rest_api_port=8501 --model_config_file=models/models.config \
        --model_config_file_poll_wait_seconds=5 --monitoring_config_file=serving/monitoring.config

Every one of TF Serving's 48 flags is accepted; those with no meaning here are named in a notice at
start-up. --host and --max_request_bytes exist only here; --debug shows tracebacks and
TensorFlow's own logs.
"""

from __future__ import annotations

import argparse
import logging
import pathlib
import sys

from deepfake_client.errors import DeepfakeError
from serving.devserver.flags import add_flags, channel_arguments, ignored_flags_given

DEV_SERVER_VERSION = "2.20.0-devserver"  # the TF Serving release whose behaviour it follows (.env)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (TF Serving's flag names, defaults and help)."""
    p = argparse.ArgumentParser(
        prog="deepfake-devserver",
        description=__doc__.split("\n\n", 1)[1].split("\n\n")[0],
        epilog="TF Serving itself: apt-get install tensorflow-model-server (from storage.googleapis.com/"
        "tensorflow-serving-apt), then tensorflow_model_server with the same flags.",
    )
    add_flags(p)
    p.add_argument(
        "--debug", action="store_true", help="show tracebacks, debug logs and TensorFlow's own logs"
    )
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


def _check(args: argparse.Namespace) -> str | None:
    """Server::BuildAndStart's refusals of flag combinations (its texts)."""
    if not args.port and not args.grpc_socket_path:
        return "At least one of server_options.grpc_port or server_options.grpc_socket_path must be set."
    if args.port and args.port == args.rest_api_port:
        return "--port and --rest_api_port cannot be the same"
    if args.use_alts_credentials and args.ssl_config_file:
        return "Either use_alts_credentials must be false or ssl_config_file must be empty."
    if not args.model_base_path and not args.model_config_file:
        return "Both server_options.model_base_path and server_options.model_config_file are empty!"
    if args.batching_parameters_file and not args.enable_batching:
        return (
            "server_options.batching_parameters_file is set without setting "
            "server_options.enable_batching to true."
        )
    parallel = (
        args.tensorflow_intra_op_parallelism,
        args.tensorflow_inter_op_parallelism,
        args.tensorflow_session_parallelism,
    )
    if all(n > 0 for n in parallel):
        return (
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all."
        )
    try:
        channel_arguments(args.grpc_channel_arguments)
    except ValueError as err:
        return str(err)
    return None


def set_parallelism(args: argparse.Namespace) -> None:
    """TF's intra/inter-op thread pools, as the session config of Server::BuildAndStart sets them."""
    intra, inter = args.tensorflow_intra_op_parallelism, args.tensorflow_inter_op_parallelism
    if not intra and not inter:
        intra = inter = args.tensorflow_session_parallelism
    if intra or inter:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)


def options_from(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    """The ServerOptions the flags describe (reads the batching, monitoring and SSL files)."""
    from serving.devserver.server import ServerOptions

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
    return ServerOptions(
        host=args.host,
        port=args.port,
        grpc_socket_path=args.grpc_socket_path,
        rest_api_port=args.rest_api_port,
        rest_api_num_threads=args.rest_api_num_threads,
        rest_api_timeout_in_ms=args.rest_api_timeout_in_ms,
        rest_api_enable_cors_support=args.rest_api_enable_cors_support,
        model_config_file=args.model_config_file,
        model_config_file_poll_wait_seconds=args.model_config_file_poll_wait_seconds,
        model_name=args.model_name,
        model_base_path=args.model_base_path,
        file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
        allow_version_labels_for_unavailable_models=args.allow_version_labels_for_unavailable_models,
        num_load_threads=args.num_load_threads,
        max_num_load_retries=args.max_num_load_retries,
        load_retry_interval_micros=args.load_retry_interval_micros,
        ssl=read_ssl_config(args.ssl_config_file) if args.ssl_config_file else None,
        batching=batching,
        metrics_path=metrics_path,
        max_request_bytes=args.max_request_bytes,
        grpc_max_threads=args.grpc_max_threads,
        grpc_channel_arguments=tuple(channel_arguments(args.grpc_channel_arguments)),
        saved_model_tags=tuple(t for t in args.saved_model_tags.split(",") if t),
        enable_model_warmup=args.enable_model_warmup,
        num_request_iterations_for_warmup=args.num_request_iterations_for_warmup,
        enable_signature_method_name_check=args.enable_signature_method_name_check,
        enable_grpc_healthcheck_service=args.enable_grpc_healthcheck_service,
        enable_serialization_as_tensor_content=args.enable_serialization_as_tensor_content,
    )


def main(argv: list[str] | None = None) -> int:
    """Run the dev server until SIGTERM; 0 on a clean shutdown.

    TensorFlow's and absl's native start-up lines stay off the terminal unless ``--debug``
    (``training.quiet``, entered before TensorFlow is imported).
    """
    from training.quiet import quiet_tensorflow

    args = build_parser().parse_args(argv)
    with quiet_tensorflow(debug=args.debug):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if args.version:
        import tensorflow as tf

        print(f"TensorFlow ModelServer: {DEV_SERVER_VERSION}\nTensorFlow Library: {tf.__version__}")
        return 0
    problem = _check(args)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    ignored = ignored_flags_given(args)
    if ignored:
        print(
            "notice: accepted for compatibility with TF Serving, no effect in the dev server: "
            + ", ".join(f"--{name}" for name in ignored),
            file=sys.stderr,
        )
    try:
        from serving.devserver.server import DevServer
        from serving.devserver.status import ServingError

        set_parallelism(args)
        server = DevServer(options_from(args))
        server.install_signal_handlers()
        server.start()
    except (ServingError, DeepfakeError, OSError) as err:
        if args.debug:
            raise
        message = getattr(err, "message", None) or str(err)
        print(f"error: {message}", file=sys.stderr)
        code = getattr(err, "code", "")
        return getattr(err, "exit_code", {"INVALID_ARGUMENT": 2, "NOT_FOUND": 3}.get(code, 1))
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
