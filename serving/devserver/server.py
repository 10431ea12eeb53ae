"""The dev server process: manager, pollers, gRPC and REST servers, graceful shutdown."""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass
from typing import Any

from deepfake_client._proto import tfs_pb2
from serving.devserver import repository
from serving.devserver.manager import ModelManager
from serving.devserver.metrics import Metrics
from serving.devserver.runtime import load_servable
from serving.devserver.service import PredictionService
from serving.devserver.status import ServingError

log = logging.getLogger("serving.devserver")


@dataclass(frozen=True)
class ServerOptions:
    """The options TF Serving's flags set (names are the flags')."""

    host: str = "127.0.0.1"
    port: int = 8500
    rest_api_port: int = 0
    rest_api_num_threads: int = 16
    rest_api_timeout_in_ms: int = 30000
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    model_name: str = "default"
    model_base_path: str = ""
    file_system_poll_wait_seconds: int = 1
    allow_version_labels_for_unavailable_models: bool = False
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60_000_000
    batching: Any = None  # batching.BatchingParameters when --enable_batching
    metrics_path: str | None = None
    max_request_bytes: int = 1 << 30
    grpc_max_threads: int = 16
    ssl: Any = None  # tfs_pb2.SSLConfig from --ssl_config_file


class DevServer:
    """A running dev server (construct, :meth:`start`, :meth:`wait`, :meth:`stop`)."""

    def __init__(self, options: ServerOptions) -> None:
        self.options = options
        self.metrics = Metrics()
        self.manager = ModelManager(
            loader=load_servable,
            allow_version_labels_for_unavailable_models=options.allow_version_labels_for_unavailable_models,
            max_num_load_retries=options.max_num_load_retries,
            load_retry_interval_s=options.load_retry_interval_micros / 1e6,
        )
        self.batcher: Any = None
        if options.batching is not None:
            from serving.devserver.batching import Batcher

            self.batcher = Batcher(options.batching)
        self.service = PredictionService(manager=self.manager, metrics=self.metrics, batcher=self.batcher)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._grpc: Any = None
        self._health: Any = None
        self._uvicorn: Any = None
        self.grpc_port = 0
        self.rest_port = 0

    def initial_config(self) -> tfs_pb2.ModelServerConfig:
        """The config from ``--model_config_file`` or ``--model_name``/``--model_base_path``."""
        if self.options.model_config_file:
            return repository.read_model_config(self.options.model_config_file)
        if not self.options.model_base_path:
            raise ServingError(
                "INVALID_ARGUMENT", "Both server_model_config_file and model_base_path are empty!"
            )
        return repository.single_model_config(self.options.model_name, self.options.model_base_path)

    def start(self, *, rest: bool | None = None) -> None:
        """Apply the first config, start the pollers and both servers (returns once they listen).

        Args:
            rest: serve REST; default: when ``rest_api_port`` is not 0 (``True`` with port 0 picks one).

        Raises:
            ServingError: the first config is refused.
            OSError: a port cannot be bound.
        """
        from serving.devserver.grpc_service import create_grpc_server

        self.manager.reload_config(self.initial_config())
        # Like ServerCore::Create, open the ports only once the first versions have loaded (or failed).
        self.manager.wait_until(self.manager.settled, timeout_s=3600)
        self._spawn(self._poll_file_system, "fs-poller", self.options.file_system_poll_wait_seconds)
        if self.options.model_config_file:
            self._spawn(self._poll_config, "config-poller", self.options.model_config_file_poll_wait_seconds)
        self._grpc, self._health, self.grpc_port = create_grpc_server(
            service=self.service,
            address=f"{self.options.host}:{self.options.port}",
            max_workers=self.options.grpc_max_threads,
            ssl=self.options.ssl,
        )
        log.info("Running gRPC ModelServer at %s:%d ...", self.options.host, self.grpc_port)
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
            metrics_path=self.options.metrics_path,
            timeout_ms=self.options.rest_api_timeout_in_ms,
            max_body_bytes=self.options.max_request_bytes,
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
            app, log_level="warning", access_log=False, timeout_graceful_shutdown=30, lifespan="off"
        )
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.install_signal_handlers = lambda: None  # signals are ours: see serve_forever
        thread = threading.Thread(
            target=self._uvicorn.run, kwargs={"sockets": [sock]}, name="rest", daemon=True
        )
        thread.start()
        self._rest_thread = thread
        log.info("Exporting HTTP/REST API at:%s:%d ...", self.options.host, self.rest_port)

    def serve_forever(self) -> None:
        """Block until SIGTERM or SIGINT, then shut down gracefully."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self._stop.set())
        self._stop.wait()
        self.stop()

    def stop(self, grace_s: float = 30.0) -> None:
        """Refuse new requests, finish in-flight ones, unload everything."""
        self._stop.set()
        if self._health is not None:
            self._health.enter_graceful_shutdown()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
            self._rest_thread.join(grace_s)
        if self._grpc is not None:
            self._grpc.stop(grace_s).wait(grace_s)
        if self.batcher is not None:
            self.batcher.close(grace_s)
        self.manager.close()
        log.info("Server shut down.")
