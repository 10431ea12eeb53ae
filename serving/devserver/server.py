"""The dev server process: manager, pollers, gRPC and REST servers, graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from typing import Any

from deepfake_client._proto import tfs_pb2
from serving.devserver import repository
from serving.devserver.classify import ExampleApis
from serving.devserver.manager import ModelManager
from serving.devserver.metrics import Metrics
from serving.devserver.runtime import load_servable
from serving.devserver.service import PredictionService
from serving.devserver.status import ServingError

log = logging.getLogger("serving.devserver")

STOP_GRACE_S = 10.0  # the whole shutdown: in-flight calls get this long, together


@dataclass(frozen=True)
class ServerOptions:
    """The options TF Serving's flags set (names are the flags'; see ``flags.py``)."""

    host: str = "0.0.0.0"  # TF Serving binds every interface; the launcher passes 127.0.0.1
    port: int = 8500
    grpc_socket_path: str = ""
    rest_api_port: int = 0
    rest_api_num_threads: int = 16
    rest_api_timeout_in_ms: int = 30000
    rest_api_enable_cors_support: bool = False
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    file_system_poll_wait_seconds: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    num_load_threads: int = 0
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    batching: Any = None  # batching.BatchingParameters when --enable_batching
    metrics_path: str | None = None
    max_request_bytes: int = 1 << 30
    grpc_max_threads: int = 16
    grpc_channel_arguments: tuple = ()
    ssl: Any = None  # tfs_pb2.SSLConfig from --ssl_config_file
    saved_model_tags: tuple[str, ...] = ("serve",)
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 0
    enable_signature_method_name_check: bool = False
    enable_grpc_healthcheck_service: bool = False
    enable_serialization_as_tensor_content: bool = False


class DevServer:
    """A running dev server (construct, :meth:`start`, :meth:`serve_forever` or :meth:`stop`)."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        self._load_slots = threading.BoundedSemaphore(max(options.num_load_threads, 1))
        self.manager = ModelManager(
            loader=self._load,
            allow_version_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models,
            max_num_load_retries=options.max_num_load_retries,
            load_retry_interval_s=max(options.load_retry_interval_micros, 0) / 1e6,
        )
        self.batcher: Any = None
        if options.batching is not None:
            from serving.devserver.batching import Batcher

            self.batcher = Batcher(options.batching, metrics=self.metrics)
        self.service = PredictionService(
            manager=self.manager,
            metrics=self.metrics,
            batcher=self.batcher,
            tensor_content=options.enable_serialization_as_tensor_content,
        )
        self.examples = ExampleApis(self.service, method_check=options.enable_signature_method_name_check)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._grpc: Any = None
        self._health: Any = None
        self._uvicorn: Any = None
        self._rest_thread: threading.Thread | None = None
        self.grpc_port = 0
        self.rest_port = 0

    def _load(self, *, name: str, version: int, path: Any) -> Any:
        """load_servable with the flags' tags and warm-up; ``--num_load_threads`` loads at a time."""
        with self._load_slots:
            return load_servable(
                name=name,
                version=version,
                path=path,
                warmup=self.options.enable_model_warmup,
                tags=self.options.saved_model_tags,
                warmup_iterations=self.options.num_request_iterations_for_warmup,
                metrics=self.metrics,
            )

    def initial_config(self) -> tfs_pb2.ModelServerConfig:
        """The config from ``--model_config_file`` or ``--model_name``/``--model_base_path``."""
        if self.options.model_config_file:
            return repository.read_model_config(self.options.model_config_file)
        if not self.options.model_base_path:
            raise ServingError(
                "INVALID_ARGUMENT",
                "Both server_options.model_base_path and server_options.model_config_file are empty!",
            )
        log.info(
            "Building single TensorFlow model file config:  model_name: %s model_base_path: %s",
            self.options.model_name,
            self.options.model_base_path,
        )
        return repository.single_model_config(self.options.model_name, self.options.model_base_path)

    def start(self, *, rest: bool | None = None) -> None:
        """Apply the first config, start the pollers and both servers (returns once they listen).

        Like ServerCore::Create, the ports open only once every model's latest version is
        AVAILABLE or has failed; a model whose base path or versions are missing keeps start-up
        waiting (logged at every poll), until :meth:`stop`.

        Args:
            rest: serve REST; default: when ``rest_api_port`` is not 0 (``True`` with port 0 picks one).

        Raises:
            ServingError: the first config is refused.
            OSError: a port cannot be bound.
        """
        from serving.devserver.grpc_service import create_grpc_server

        config = self.initial_config()
        # The file-system poller runs during the first load, so a missing base path is seen when it appears.
        self._spawn(self._poll_file_system, "fs-poller", self.options.file_system_poll_wait_seconds)
        self.manager.reload_config(config)
        if self._stop.is_set():
            return
        if self.options.model_config_file:
            self._spawn(self._poll_config, "config-poller", self.options.model_config_file_poll_wait_seconds)
        # Port 0 picks a free port (tests), except next to a socket path, where it means none (TF Serving).
        tcp = f"{self.options.host}:{self.options.port}"
        addresses = [] if self.options.grpc_socket_path and not self.options.port else [tcp]
        if self.options.grpc_socket_path:
            addresses.append(f"unix:{self.options.grpc_socket_path}")
        self._grpc, self._health, ports = create_grpc_server(
            service=self.service,
            examples=self.examples,
            metrics=self.metrics,
            addresses=addresses,
            max_workers=self.options.grpc_max_threads,
            ssl=self.options.ssl,
            channel_arguments=self.options.grpc_channel_arguments,
            health=self.options.enable_grpc_healthcheck_service,
        )
        self.grpc_port = ports[0] if ports else 0
        if self.grpc_port:
            log.info("Running gRPC ModelServer at %s:%d ...", self.options.host, self.grpc_port)
        if self.options.grpc_socket_path:
            log.info("Running gRPC ModelServer at UNIX socket %s ...", self.options.grpc_socket_path)
        if rest if rest is not None else bool(self.options.rest_api_port):
            self._start_rest()

    def _spawn(self, target: Any, name: str, period_s: float) -> None:
        if period_s <= 0:
            return
        thread = threading.Thread(target=target, args=(period_s,), name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_file_system(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            try:
                self.manager.poll_file_system()
            except Exception:  # noqa: BLE001 - a poll never kills the server
                log.exception("file system poll failed")

    def _poll_config(self, period_s: float) -> None:
        while not self._stop.wait(period_s):
            try:
                config = repository.read_model_config(self.options.model_config_file)
            except ServingError as err:
                log.error("Failed to read ModelServerConfig file: %s", err.message)
                continue
            try:
                self.manager.reload_config(config)
            except ServingError as err:
                log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", err.message)

    def _start_rest(self) -> None:
        import socket

        import uvicorn

        from serving.devserver.rest import create_app

        app = create_app(
            service=self.service,
            examples=self.examples,
            metrics_path=self.options.metrics_path,
            timeout_ms=self.options.rest_api_timeout_in_ms,
            max_body_bytes=self.options.max_request_bytes,
            num_threads=self.options.rest_api_num_threads,
            cors=self.options.rest_api_enable_cors_support,
        )
        sock = socket.socket(socket.AF_INET6 if ":" in self.options.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit this. asyncio sets it itself only on sockets whose proto is
        # IPPROTO_TCP, which a plain socket.socket() is not: without it every response waited for
        # the client's delayed ACK (44 ms per request, measured; 0.2 ms with it).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((self.options.host, self.options.rest_api_port))
        self.rest_port = sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=int(STOP_GRACE_S),
            lifespan="off",
        )
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.install_signal_handlers = lambda: None  # signals are ours: see serve_forever
        thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="rest", daemon=True
        )
        thread.start()
        self._rest_thread = thread
        log.info("Exporting HTTP/REST API at:%s:%d ...", self.options.host, self.rest_port)

    def install_signal_handlers(self) -> None:
        """SIGTERM and SIGINT end :meth:`start` (while it waits for models) or :meth:`serve_forever`."""

        def on_signal(*_: Any) -> None:
            self._stop.set()
            self.manager.close()  # ends a start-up that waits for a model

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)

    def serve_forever(self) -> None:
        """Block until SIGTERM or SIGINT, then shut down gracefully."""
        self.install_signal_handlers()
        while not self._stop.wait(0.5):
            pass
        self.stop()

    def stop(self, grace_s: float = STOP_GRACE_S) -> None:
        """Refuse new calls at once on both ports, give in-flight ones ``grace_s`` in all, unload."""
        deadline = time.monotonic() + grace_s
        self._stop.set()
        grpc_done = None
        if self._grpc is not None:
            if self._health is not None:
                self._health.enter_graceful_shutdown()
            grpc_done = self._grpc.stop(grace_s)  # new RPCs are refused from here on
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True  # closes the listening socket at its next tick
        if self._rest_thread is not None:
            self._rest_thread.join(max(deadline - time.monotonic(), 0))
        if grpc_done is not None:
            grpc_done.wait(max(deadline - time.monotonic(), 0))
        if self.batcher is not None:
            self.batcher.close(max(deadline - time.monotonic(), 0.1))
        self.manager.close()
        self.service.close()
        log.info("Server shut down.")
