"""TF Serving's command-line flags (``model_servers/main.cc``), all 48 of them, and the dev server's own.

Every flag TF Serving accepts is accepted here with its name, default and help text. The ones
that mean something in this process are honoured; the others (GPU, TPU, TFLite, ALTS, profiler,
platform configs, ...) are accepted and named in one notice at start-up, so a command line written
for ``tensorflow_model_server`` (or ``docker-compose.yml``) runs unchanged.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import Any

CPUS = os.cpu_count() or 1


def parse_bool(text: str) -> bool:
    """TF's flag parser's booleans: true/false, 1/0 (and yes/no)."""
    value = text.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


@dataclass(frozen=True)
class Flag:
    """One flag: TF Serving's name, type, default and help; ``honoured`` when the dev server uses it."""

    name: str
    type: Any
    default: Any
    help: str
    honoured: bool = True


TF_SERVING_FLAGS: tuple[Flag, ...] = (
    Flag("port", int, 8500, "TCP port to listen on for gRPC/HTTP API. Disabled if port set to zero."),
    Flag(
        "grpc_socket_path",
        str,
        "",
        "If non-empty, listen to a UNIX socket for gRPC API on the given path. "
        "Can be either relative or absolute path.",
    ),
    Flag(
        "rest_api_port",
        int,
        0,
        "Port to listen on for HTTP/REST API. If set to zero HTTP/REST API will not "
        "be exported. This port must be different than the one specified in --port.",
    ),
    Flag(
        "rest_api_num_threads",
        int,
        4 * CPUS,
        "Number of threads for HTTP/REST API processing. If not set, "
        "will be auto set based on number of CPUs.",
    ),
    Flag(
        "rest_api_timeout_in_ms",
        int,
        30000,
        "Timeout for HTTP/REST API calls (the model run, as TF Serving's RunOptions.timeout_in_ms; 0: none).",
    ),
    Flag("rest_api_enable_cors_support", bool, False, "Enable CORS headers in response"),
    Flag("enable_batching", bool, False, "enable batching"),
    Flag(
        "allow_version_labels_for_unavailable_models",
        bool,
        False,
        "If true, allows assigning unused version labels to models that are not available yet.",
    ),
    Flag(
        "batching_parameters_file",
        str,
        "",
        "If non-empty, read an ascii BatchingParameters protobuf from the "
        "supplied file name and use the contained values instead of the defaults.",
    ),
    Flag(
        "enable_per_model_batching_parameters",
        bool,
        False,
        "Enables model specific batching params read from `batching_params.pbtxt` in the SavedModel dir.",
        honoured=False,
    ),
    Flag(
        "model_config_file",
        str,
        "",
        "If non-empty, read an ascii ModelServerConfig protobuf from the supplied "
        "file name, and serve the models in that file. (If used, --model_name, --model_base_path are "
        "ignored.)",
    ),
    Flag(
        "model_config_file_poll_wait_seconds",
        int,
        0,
        "Interval in seconds between each poll of the "
        "filesystem for model_config_file. If unset or set to zero, poll will be done exactly once and not "
        "periodically.",
    ),
    Flag("model_name", str, "default", "name of model (ignored if --model_config_file flag is set)"),
    Flag(
        "model_base_path",
        str,
        "",
        "path to export (ignored if --model_config_file flag is set, otherwise required)",
    ),
    Flag(
        "num_load_threads",
        int,
        0,
        "The number of threads in the thread-pool used to load servables. If set "
        "as 0, loads are performed serially (one at a time).",
    ),
    Flag(
        "num_unload_threads",
        int,
        0,
        "The number of threads in the thread-pool used to unload servables (unloading is instant here).",
        honoured=False,
    ),
    Flag(
        "max_num_load_retries",
        int,
        5,
        "maximum number of times it retries loading a model after the first "
        "failure, before giving up. If set to 0, a load is attempted only once. Default: 5",
    ),
    Flag(
        "load_retry_interval_micros",
        int,
        60_000_000,
        "The interval, in microseconds, between each servable "
        "load retry. If set negative, it doesn't wait. Default: 1 minute",
    ),
    Flag(
        "file_system_poll_wait_seconds",
        int,
        1,
        "Interval in seconds between each poll of the filesystem for "
        "new model version. If set to zero poll will be exactly done once and not periodically.",
    ),
    Flag(
        "flush_filesystem_caches",
        bool,
        True,
        "If true (the default), filesystem caches will be flushed after loads (no such caches here).",
        honoured=False,
    ),
    Flag(
        "tensorflow_session_parallelism",
        int,
        0,
        "Number of threads to use for running a Tensorflow session. Auto-configured by default.",
    ),
    Flag(
        "tensorflow_session_config_file",
        str,
        "",
        "If non-empty, read an ascii TensorFlow Session ConfigProto protobuf from the supplied file name.",
        honoured=False,
    ),
    Flag(
        "tensorflow_intra_op_parallelism",
        int,
        0,
        "Number of threads to use to parallelize the execution of "
        "an individual op. Auto-configured by default.",
    ),
    Flag(
        "tensorflow_inter_op_parallelism",
        int,
        0,
        "Controls the number of operators that can be executed simultaneously. Auto-configured by default.",
    ),
    Flag(
        "use_alts_credentials",
        bool,
        False,
        "Use Google ALTS credentials (Google Cloud only).",
        honoured=False,
    ),
    Flag(
        "ssl_config_file",
        str,
        "",
        "If non-empty, read an ascii SSLConfig protobuf from the supplied file name "
        "and set up a secure gRPC channel",
    ),
    Flag(
        "platform_config_file",
        str,
        "",
        "If non-empty, read an ascii PlatformConfigMap protobuf from the "
        "supplied file name, and use that platform config instead of the Tensorflow platform.",
        honoured=False,
    ),
    Flag(
        "per_process_gpu_memory_fraction",
        float,
        0.0,
        "Fraction that each process occupies of the GPU memory space (no GPU is used here).",
        honoured=False,
    ),
    Flag(
        "saved_model_tags",
        str,
        "serve",
        "Comma-separated set of tags corresponding to the meta graph def to load from SavedModel.",
    ),
    Flag(
        "grpc_channel_arguments",
        str,
        "",
        "A comma separated list of arguments to be passed to the grpc "
        "server. (e.g. grpc.max_connection_age_ms=2000)",
    ),
    Flag("grpc_max_threads", int, 4 * CPUS, "Max grpc server threads to handle grpc messages."),
    Flag(
        "enable_model_warmup",
        bool,
        True,
        "Enables model warmup, which triggers lazy initializations (such as "
        "TF optimizations) at load time, to reduce first request latency.",
    ),
    Flag(
        "num_request_iterations_for_warmup",
        int,
        0,
        "Number of times a request is iterated during warmup replay. This value is used only if > 0.",
    ),
    Flag("version", bool, False, "Display version"),
    Flag(
        "monitoring_config_file",
        str,
        "",
        "If non-empty, read an ascii MonitoringConfig protobuf from the supplied file name",
    ),
    Flag(
        "remove_unused_fields_from_bundle_metagraph",
        bool,
        True,
        "Removes unused fields from MetaGraphDef proto message to save memory.",
        honoured=False,
    ),
    Flag(
        "prefer_tflite_model",
        bool,
        False,
        "EXPERIMENTAL; Prefer TensorFlow Lite model from `model.tflite`.",
        honoured=False,
    ),
    Flag("num_tflite_pools", int, CPUS, "EXPERIMENTAL; Number of TFLite interpreter pools.", honoured=False),
    Flag(
        "num_tflite_interpreters_per_pool",
        int,
        1,
        "EXPERIMENTAL; Number of TFLite interpreters per pool.",
        honoured=False,
    ),
    Flag(
        "enable_signature_method_name_check",
        bool,
        False,
        "Enable method_name check for SignatureDef. Disable "
        "this if serving native TF2 regression/classification models.",
    ),
    Flag(
        "xla_cpu_compilation_enabled",
        bool,
        False,
        "EXPERIMENTAL; Enable XLA:CPU JIT (default is disabled).",
        honoured=False,
    ),
    Flag(
        "xla_gpu_compilation_enabled",
        bool,
        False,
        "EXPERIMENTAL; Enable both XLA:CPU JIT and XLA:GPU JIT.",
        honoured=False,
    ),
    Flag("enable_profiler", bool, True, "Enable profiler service.", honoured=False),
    Flag(
        "thread_pool_factory_config_file",
        str,
        "",
        "If non-empty, read an ascii ThreadPoolConfig protobuf from the supplied file name.",
        honoured=False,
    ),
    Flag("mixed_precision", str, "", "specify mixed_precision mode", honoured=False),
    Flag("skip_initialize_tpu", bool, False, "Whether to skip auto initializing TPU.", honoured=False),
    Flag("enable_grpc_healthcheck_service", bool, False, "Enable the standard gRPC healthcheck service."),
    Flag(
        "enable_serialization_as_tensor_content",
        bool,
        False,
        "Enable serialization of predict response as tensor content.",
    ),
)

DEV_SERVER_FLAGS: tuple[Flag, ...] = (
    Flag(
        "host",
        str,
        "0.0.0.0",
        "bind address of both ports (dev server only; TF Serving always binds "
        "0.0.0.0). The launcher and docker-compose.yml keep 127.0.0.1.",
    ),
    Flag("max_request_bytes", int, 1 << 30, "REST body limit in bytes (dev server only)"),
)

IGNORED = frozenset(f.name for f in TF_SERVING_FLAGS if not f.honoured)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add every TF Serving flag and the dev server's own to ``parser``."""
    for group_name, flags in (("TF Serving flags", TF_SERVING_FLAGS), ("dev server only", DEV_SERVER_FLAGS)):
        group = parser.add_argument_group(group_name)
        for flag in flags:
            note = "" if flag.honoured else " [accepted; no effect in the dev server]"
            text = f"{flag.help}{note} (default: {flag.default!r})".replace("%", "%%")
            if flag.type is bool:
                group.add_argument(
                    f"--{flag.name}", type=parse_bool, nargs="?", const=True, default=flag.default, help=text
                )
            else:
                group.add_argument(f"--{flag.name}", type=flag.type, default=flag.default, help=text)


def ignored_flags_given(args: argparse.Namespace) -> list[str]:
    """The accepted-but-ignored flags whose value differs from TF Serving's default."""
    defaults = {f.name: f.default for f in TF_SERVING_FLAGS}
    return sorted(name for name in IGNORED if getattr(args, name) != defaults[name])


def channel_arguments(text: str) -> list[tuple[str, int | str]]:
    """``--grpc_channel_arguments``: "k=v,k=v", ints as ints (server.cc's parseGrpcChannelArgs).

    Raises:
        ValueError: an entry without ``=``.
    """
    out: list[tuple[str, int | str]] = []
    for item in filter(None, text.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--grpc_channel_arguments: {item!r} is not key=value")
        try:
            out.append((key.strip(), int(value)))
        except ValueError:
            out.append((key.strip(), value))
    return out
