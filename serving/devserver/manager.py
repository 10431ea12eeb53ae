"""The model manager: which versions are loaded, their states, labels and safe hand-over.

It follows TF Serving's AspiredVersionsManager with the AvailabilityPreservingPolicy: a new
version loads (and replays its warm-up records) while the old one keeps serving; an old version is
unloaded only once an aspired version is AVAILABLE (or none is aspired at all), and only after the
requests in flight on it have finished; a version that fails to load ends in END with its error and
displaces nothing. Labels may only point at AVAILABLE versions (ServerCore::UpdateModelVersionLabelMap).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from deepfake_client._proto import tfs_pb2
from export.publish import version_dirs
from serving.devserver import repository
from serving.devserver.runtime import Servable
from serving.devserver.status import ServingError, invalid_argument, not_found

log = logging.getLogger("serving.devserver")

Loader = Callable[..., Servable]

START, LOADING, AVAILABLE, UNLOADING, END = "START", "LOADING", "AVAILABLE", "UNLOADING", "END"


@dataclass
class VersionEntry:
    """One version's place in the lifecycle."""

    version: int
    path: pathlib.Path
    state: str = START
    error_code: str = "OK"
    error_message: str = ""
    servable: Servable | None = None
    in_flight: int = 0
    failed: bool = False


@dataclass
class ModelEntry:
    """A model's versions, keyed by number."""

    config: tfs_pb2.ModelConfig
    versions: dict[int, VersionEntry] = field(default_factory=dict)
    aspired: set[int] = field(default_factory=set)


class ModelManager:
    """Owns every loaded version; thread-safe.

    Args:
        loader: ``loader(name=, version=, path=)`` returning a :class:`Servable` or raising.
        allow_version_labels_for_unavailable_models: TF Serving's flag of the same name.
        max_num_load_retries: retries of a failed load (TF Serving's flag; it defaults to 5).
        load_retry_interval_s: the wait between retries.
    """

    def __init__(
        self,
        *,
        loader: Loader,
        allow_version_labels_for_unavailable_models: bool = False,
        max_num_load_retries: int = 5,
        load_retry_interval_s: float = 60.0,
    ) -> None:
        self._loader = loader
        self._allow_unavailable_labels = allow_version_labels_for_unavailable_models
        self._retries = max_num_load_retries
        self._retry_interval_s = load_retry_interval_s
        self._lock = threading.Condition()
        self._models: dict[str, ModelEntry] = {}
        self._labels: dict[str, dict[str, int]] = {}
        self._config: tfs_pb2.ModelServerConfig | None = None
        self._closed = False
        self._reload_lock = threading.Lock()

    # ---------------------------------------------------------------- config and file system

    @property
    def config(self) -> tfs_pb2.ModelServerConfig | None:
        """The config in force."""
        return self._config

    def reload_config(self, config: tfs_pb2.ModelServerConfig, *, wait: bool = True) -> None:
        """Validate and apply a config (as ServerCore::ReloadConfig does); the old one stays on refusal.

        Like ServerCore, it returns once every model the config adds has its latest version
        AVAILABLE or failed (at start-up: every model), and reloads are applied one at a time.
        A model whose versions never appear keeps it waiting, as in TF Serving, until
        :meth:`close`.

        Raises:
            ServingError: the config is invalid or a label points at a version that is not AVAILABLE.
        """
        if config.WhichOneof("config") is None:
            log.info("Taking no action for empty config.")
            return
        repository.validate_config(config)
        with self._reload_lock:
            with self._lock:
                labels = self._validated_labels(config)
                self._config = config
                self._labels = labels
                wanted = {m.name: m for m in config.model_config_list.config}
                known = {name for name, entry in self._models.items() if entry.config.base_path}
                new = [name for name in wanted if name not in known]
                for name, model in wanted.items():
                    entry = self._models.get(name)
                    if entry is None:
                        self._models[name] = ModelEntry(config=model)
                    else:
                        entry.config = model
                for name, entry in self._models.items():
                    if name not in wanted:
                        entry.config = tfs_pb2.ModelConfig(name=name, base_path="")
            self.poll_file_system()
            if wait:
                self.wait_until(
                    lambda: self._closed or all(self._ready(n) for n in new), timeout_s=float("inf")
                )

    def _ready(self, name: str) -> bool:
        """ServableRequest::Latest(name) reached AVAILABLE or END, and no version of it is still
        loading (call with the lock held)."""
        entry = self._models.get(name)
        if entry is None or not entry.aspired:
            return False
        latest = entry.versions.get(max(entry.aspired))
        if latest is None or latest.state not in (AVAILABLE, END):
            return False
        return not any(
            entry.versions[v].state in (START, LOADING) for v in entry.aspired if v in entry.versions
        )

    def _validated_labels(self, config: tfs_pb2.ModelServerConfig) -> dict[str, dict[str, int]]:
        labels: dict[str, dict[str, int]] = {}
        for model in config.model_config_list.config:
            for label, version in model.version_labels.items():
                existing = self._labels.get(model.name, {}).get(label)
                allow_any = self._allow_unavailable_labels and (existing is None or existing == version)
                entry = self._models.get(model.name)
                state = entry.versions[version].state if entry and version in entry.versions else None
                if not allow_any and state != AVAILABLE:
                    raise ServingError(
                        "FAILED_PRECONDITION",
                        f"Request to assign label to version {version} of model {model.name}, which is "
                        f"not currently available for inference",
                    )
                labels.setdefault(model.name, {})[label] = version
        return labels

    def poll_file_system(self) -> None:
        """Scan every base path once and start the loads and unloads the policies ask for.

        As TF Serving's FileSystemStoragePathSource, a base path that does not exist fails the
        whole poll: it is logged and nothing changes for any model until it appears.
        """
        with self._lock:
            models = list(self._models.values())
        for entry in models:
            base = entry.config.base_path
            if base and "://" not in base and not os.path.exists(base):
                log.error(
                    "FileSystemStoragePathSource encountered a filesystem access error: Could not find "
                    "base path %s for servable %s with error NOT_FOUND: %s; No such file or directory",
                    base,
                    entry.config.name,
                    base,
                )
                return
        for entry in models:
            try:
                on_disk = version_dirs(entry.config.base_path) if entry.config.base_path else {}
            except OSError as err:  # as TF Serving: a failed listing changes nothing this round
                log.error(
                    "cannot list the versions of %s under %s: %s",
                    entry.config.name,
                    entry.config.base_path,
                    err,
                )
                continue
            if entry.config.base_path and not on_disk:
                log.warning(
                    "No versions of servable %s found under base path %s. Did you forget to name your "
                    "leaf directory as a number (eg. '/1/')?",
                    entry.config.name,
                    entry.config.base_path,
                )
            aspired = repository.aspired_versions(entry.config, on_disk) if on_disk else {}
            with self._lock:
                entry.aspired = set(aspired)
                for version, path in aspired.items():
                    known = entry.versions.get(version)
                    if known is None or (known.state == END and not known.failed):
                        entry.versions[version] = VersionEntry(version=version, path=path)
                self._step(entry)

    def _step(self, entry: ModelEntry) -> None:
        """One round of the availability-preserving policy (call with the lock held)."""
        while True:
            aspired = [v for v in entry.versions.values() if v.version in entry.aspired]
            serving_aspired = any(v.state == AVAILABLE for v in aspired)
            unaspired_serving = sorted(
                (
                    v
                    for v in entry.versions.values()
                    if v.version not in entry.aspired and v.state == AVAILABLE
                ),
                key=lambda v: v.version,
            )
            if unaspired_serving and (not aspired or serving_aspired or len(unaspired_serving) > 1):
                self._unload(entry, unaspired_serving[0])
                continue
            break
        for v in sorted(aspired, key=lambda v: -v.version):
            if v.state == START and not self._closed:
                v.state = LOADING
                threading.Thread(
                    target=self._load,
                    args=(entry, v),
                    name=f"load-{entry.config.name}-{v.version}",
                    daemon=True,
                ).start()

    def _load(self, entry: ModelEntry, v: VersionEntry) -> None:
        name = entry.config.name
        attempt = 0
        while True:
            log.info("Loading servable version {name: %s version: %d}", name, v.version)
            try:
                servable = self._loader(name=name, version=v.version, path=v.path)
                break
            except ServingError as err:
                code, message = err.code, err.message
            except Exception as err:  # noqa: BLE001 - any load failure is reported, never raised
                code, message = "UNKNOWN", f"{type(err).__name__}: {err}"
            attempt += 1
            if attempt > self._retries or self._closed:
                log.error(
                    "Loading servable: {name: %s version: %d} failed: %s: %s", name, v.version, code, message
                )
                with self._lock:
                    v.state, v.failed, v.error_code, v.error_message = END, True, code, message
                    self._step(entry)
                    self._lock.notify_all()
                return
            time.sleep(self._retry_interval_s)
        with self._lock:
            v.servable = servable
            v.state = AVAILABLE
            log.info("Successfully loaded servable version {name: %s version: %d}", name, v.version)
            self._step(entry)
            self._lock.notify_all()

    def _unload(self, entry: ModelEntry, v: VersionEntry) -> None:
        v.state = UNLOADING
        log.info("Unloading servable version {name: %s version: %d}", entry.config.name, v.version)
        self._finish_unload(v)

    def _finish_unload(self, v: VersionEntry) -> None:
        if v.state == UNLOADING and v.in_flight == 0:
            v.servable = None
            v.state = END
            self._lock.notify_all()

    # ---------------------------------------------------------------- requests

    def _resolve(self, name: str, version: int | None, label: str | None) -> VersionEntry:
        if label:
            number = self._labels.get(name, {}).get(label)
            if number is None:
                raise invalid_argument(f"Unrecognized servable version label: {label}")
            version = number
        entry = self._models.get(name)
        if version is not None:
            v = entry.versions.get(version) if entry else None
            if v is None or v.state != AVAILABLE:
                raise not_found(f"Servable not found for request: Specific({name}, {version})")
            return v
        available = [v for v in entry.versions.values() if v.state == AVAILABLE] if entry else []
        if not available:
            raise not_found(f"Servable not found for request: Latest({name})")
        return max(available, key=lambda v: v.version)

    @contextlib.contextmanager
    def handle(self, name: str, version: int | None = None, label: str | None = None) -> Iterator[Servable]:
        """Hold a version for the length of a request; it is not unloaded before the block ends."""
        if not name:
            raise invalid_argument("ModelSpec has no name specified.")
        with self._lock:
            v = self._resolve(name, version, label)
            v.in_flight += 1
            servable = v.servable
        try:
            assert servable is not None
            yield servable
        finally:
            with self._lock:
                v.in_flight -= 1
                self._finish_unload(v)

    def model_status(self, name: str, version: int | None = None) -> list[tfs_pb2.ModelVersionStatus]:
        """GetModelStatus: every known version, newest first (GetModelStatusImpl's texts)."""
        if not name:
            raise invalid_argument("Missing model name in request.")
        with self._lock:
            entry = self._models.get(name)
            versions = dict(entry.versions) if entry else {}
            if version is not None:
                if version not in versions:
                    raise not_found(f"Could not find version {version} of model {name}")
                versions = {version: versions[version]}
            elif not versions:
                raise not_found(f"Could not find any versions of model {name}")
            out = []
            for number in sorted(versions, reverse=True):
                v = versions[number]
                status = tfs_pb2.ModelVersionStatus(
                    version=number, state=getattr(tfs_pb2.ModelVersionStatus, v.state)
                )
                status.status.error_code = tfs_pb2.ErrorCode.Value(v.error_code)
                status.status.error_message = v.error_message
                out.append(status)
            return out

    def labels(self, name: str) -> dict[str, int]:
        """The labels in force for a model."""
        with self._lock:
            return dict(self._labels.get(name, {}))

    def states(self, name: str) -> dict[int, str]:
        """Version -> state name, for tests and logs."""
        with self._lock:
            entry = self._models.get(name)
            return {v.version: v.state for v in entry.versions.values()} if entry else {}

    def settled(self) -> bool:
        """True when no version is starting or loading."""
        with self._lock:
            return not any(
                v.state in (START, LOADING) for m in self._models.values() for v in m.versions.values()
            )

    def wait_until(self, predicate: Callable[[], bool], timeout_s: float) -> bool:
        """Block until ``predicate()`` holds (re-checked on every state change and every 0.2 s,
        with the lock held) or time runs out."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.2))
            return True

    def close(self) -> None:
        """Stop starting loads and unload everything once in-flight requests are done."""
        with self._lock:
            self._closed = True
            for entry in self._models.values():
                for v in entry.versions.values():
                    if v.state == AVAILABLE:
                        self._unload(entry, v)
