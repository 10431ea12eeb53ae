"""Rolling a new model version out, and back, without downtime (TensorFlow-free).

The model config file is the source of truth: every step is an atomic rewrite of ``models.config``
(TF Serving polls it) and, over gRPC, the same content sent with ``HandleReloadConfigRequest`` so the
change takes effect now. The steps keep TF Serving's rules:

- a version is added to the served set first, and a label is moved to it only once the server
  reports it ``AVAILABLE`` (TF Serving refuses a whole config whose label points elsewhere);
- TF Serving loads a new version before it unloads an old one, so requests never fail in between;
- a refused config still replaces TF Serving's in-memory config: the last good one is sent again.

The server is reached through its public API only (the client's transports), so the same tool
drives the real TF Serving and the dev server.
"""

from __future__ import annotations

import contextlib
import dataclasses
import pathlib
import time
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from deepfake_client import contract
from deepfake_client.errors import DeadlineExceededError, DeepfakeError, InvalidInputError, NotFoundError
from deepfake_client.transport.base import Target, Transport
from export.metadata import GOLDEN_FILE, GOLDEN_TOLERANCE, load_golden
from export.publish import file_lock, list_versions, model_dir
from serving.config import ModelEntry, ServingConfig, initial_config, load_config, save_config

LOCK_FILE = ".rollout.lock"


class RolloutError(DeepfakeError):
    """Raised when a rollout step is refused: golden-set mismatch, another rollout running, no canary."""

    exit_code = 5
    http_status = 409
    grpc_code = "FAILED_PRECONDITION"


@dataclasses.dataclass
class Rollout:
    """The rollout of one model in one repository, against one server.

    Args:
        repository: the model repository on this host (holds ``models.config`` and ``<model>/<N>/``).
        servers: the API of every server (replica) that reads this repository's config. gRPC gives
            immediate reloads; over REST each server's own config polling applies the change. A
            version counts as AVAILABLE only when every server says so.
        config_path: the model config file (default ``<repository>/models.config``).
        model: the model name.
        wait_timeout_s: how long a new version may take to become AVAILABLE.
        log: where progress lines go.
    """

    repository: pathlib.Path
    servers: Sequence[Transport] = ()
    config_path: pathlib.Path | None = None
    model: str = contract.MODEL_NAME
    wait_timeout_s: float = 300.0
    poll_s: float = 0.25
    log: Callable[[str], None] = lambda line: None

    def __post_init__(self) -> None:
        self.repository = pathlib.Path(self.repository)
        self.config_path = pathlib.Path(self.config_path or self.repository / "models.config")

    # -- reading -------------------------------------------------------------------------------

    def config(self) -> ServingConfig:
        return load_config(self.config_path)

    def entry(self) -> ModelEntry:
        return self.config().model(self.model)

    def published(self) -> list[int]:
        return list_versions(model_dir(self.repository, self.model))

    def server_states(self) -> dict[int, str]:
        """Version states on the first server."""
        return self._servers()[0].status(Target(self.model))

    def status(self) -> dict:
        """Versions on disk, in the config and on the server, and the labels."""
        entry = self.entry()
        states: dict[int, str] | str
        try:
            states = self.server_states() if self.servers else "no server given"
        except DeepfakeError as err:
            states = f"unreachable: {err}"
        return {
            "model": self.model,
            "config": str(self.config_path),
            "published": self.published(),
            "served": list(entry.versions) if entry.policy == "specific" else entry.policy,
            "labels": dict(entry.labels),
            "server": {str(k): v for k, v in states.items()} if isinstance(states, dict) else states,
        }

    # -- steps -----------------------------------------------------------------------------------

    def publish(
        self, source: str | pathlib.Path, *, version: int | None = None, server_base_path: str | None = None
    ) -> int:
        """Publish a run folder or an exported SavedModel as a new version; does not serve it.

        The first version of a repository also gets the initial config (served, labelled stable).
        """
        source = pathlib.Path(source)
        if (source / "saved_model.pb").is_file():
            from export.publish import copy_saved_model, publish_version

            number = int(
                publish_version(
                    self.repository, copy_saved_model(source), version=version, model_name=self.model
                ).name
            )
        elif (source / "model.keras").is_file():
            try:  # export.version imports TensorFlow only when it runs: ask for it here
                import tensorflow  # noqa: F401

                from export.version import export_run
            except ImportError as err:  # TensorFlow is not installed on this host
                raise InvalidInputError(
                    f"{source}: publishing a training run needs TensorFlow "
                    "(pip install 'deepfake-serving[train]'); "
                    "or export it elsewhere and publish the SavedModel directory"
                ) from err
            number = export_run(source, self.repository, version=version, model_name=self.model).version
        else:
            raise NotFoundError(f"{source}: neither a SavedModel directory nor a training run (model.keras)")
        if not self.config_path.exists():
            base = server_base_path or str(model_dir(self.repository, self.model).resolve())
            save_config(self.config_path, initial_config(base, number, self.model))
            self.log(f"wrote {self.config_path}: version {number} served and labelled stable")
        self.log(f"published version {number}")
        return number

    def canary(self, version: int | None = None) -> int:
        """Serve ``version`` (default: the newest published), check its golden batch, label it canary."""
        with self._lock():
            entry = self._specific_entry()
            published = self.published()
            if version is None:
                if not published:
                    raise NotFoundError(f"no version of {self.model} is published in {self.repository}")
                version = published[-1]
            if version not in published:
                raise NotFoundError(
                    f"version {version} of {self.model} is not published in {self.repository}"
                )
            before = entry
            if version not in entry.versions:
                self._apply(entry.replace(versions=entry.versions + (version,)), before)
            try:
                self._wait_available(version)
                self._check_golden(version)
            except DeepfakeError:
                self.log(f"version {version} refused; restoring the previous config")
                self._apply(before, before)
                raise
            labels = dict(entry.labels) | {contract.CANARY_LABEL: version}
            labels.setdefault(contract.STABLE_LABEL, version)
            self._apply(self._specific_entry().replace(labels=labels), before)
            self.log(f"version {version} is AVAILABLE, matches its golden batch, and is labelled canary")
            return version

    def promote(self, keep: int = 2) -> int:
        """``stable`` := ``canary``; stop serving all but the newest ``keep`` versions up to it."""
        with self._lock():
            entry = self._specific_entry()
            canary = entry.labels.get(contract.CANARY_LABEL)
            if canary is None:
                raise RolloutError("there is no canary to promote (run `deepfake-rollout canary` first)")
            self._wait_available(canary)
            labels = {k: v for k, v in entry.labels.items() if k != contract.CANARY_LABEL}
            labels[contract.STABLE_LABEL] = canary
            kept = [v for v in entry.versions if v <= canary][-max(1, keep) :]
            versions = tuple(sorted(set(kept) | {v for v in entry.versions if v > canary}))
            self._apply(entry.replace(labels=labels, versions=versions), entry)
            retired = sorted(set(entry.versions) - set(versions))
            self.log(f"stable -> version {canary}" + (f"; retired {retired}" if retired else ""))
            return canary

    def rollback(self) -> int:
        """``stable`` back to the previous version (served again first if it was retired); canary dropped."""
        with self._lock():
            entry = self._specific_entry()
            stable = entry.labels.get(contract.STABLE_LABEL)
            if stable is None:
                raise RolloutError("there is no stable version to roll back from")
            older = [v for v in self.published() if v < stable]
            if not older:
                raise RolloutError(f"stable is version {stable}; there is no earlier version to roll back to")
            previous = older[-1]
            if previous not in entry.versions:
                self._apply(entry.replace(versions=entry.versions + (previous,)), entry)
            try:
                self._wait_available(previous)
            except DeepfakeError:
                self._apply(entry, entry)
                raise
            canary = entry.labels.get(contract.CANARY_LABEL)
            labels = {contract.STABLE_LABEL: previous}
            dropped = {canary} - {previous, None}
            versions = tuple(sorted((set(entry.versions) | {previous}) - dropped))
            # Labels move first (to versions that are loaded), then the canary stops being served.
            self._apply(self._specific_entry().replace(labels=labels), entry)
            self._apply(self._specific_entry().replace(versions=versions), entry)
            self.log(
                f"stable -> version {previous} (was {stable})"
                + (f"; canary {canary} dropped" if canary else "")
            )
            return previous

    # -- machinery -------------------------------------------------------------------------------

    def _servers(self) -> Sequence[Transport]:
        if not self.servers:
            raise InvalidInputError("this step talks to the server: give --server")
        return self.servers

    def _specific_entry(self) -> ModelEntry:
        entry = self.entry()
        if entry.policy != "specific":
            # "latest" would serve every new version the moment it is published: pin what is served now.
            served = [v for v, state in self.server_states().items() if state == "AVAILABLE"]
            entry = entry.replace(policy="specific", versions=tuple(served or self.published()[-1:]))
        return entry

    def _apply(self, entry: ModelEntry, fallback: ModelEntry) -> None:
        """Write the config with ``entry``, and send it to the server if it takes reloads."""
        config = self.config().with_model(entry)
        save_config(self.config_path, config)
        reloads = [r for r in (getattr(s, "reload_config", None) for s in self.servers) if r is not None]
        try:
            for reload in reloads:
                reload(config.to_proto())
        except DeepfakeError:
            # TF Serving swaps in a refused config before validating it: send the good one back.
            good = self.config().with_model(fallback)
            save_config(self.config_path, good)
            for reload in reloads:
                with contextlib.suppress(DeepfakeError):
                    reload(good.to_proto())
            raise

    def _wait_available(self, version: int) -> None:
        """Wait until every server reports ``version`` AVAILABLE."""
        deadline = time.monotonic() + self.wait_timeout_s
        for server in self._servers():
            state = "UNKNOWN"
            while state != "AVAILABLE":
                if time.monotonic() > deadline:
                    raise DeadlineExceededError(
                        f"version {version} did not become AVAILABLE on {server.url} "
                        f"within {self.wait_timeout_s:g} s (last state {state})"
                    )
                try:
                    state = server.status(Target(self.model, version=version)).get(version, "UNKNOWN")
                except NotFoundError:
                    state = "NOT_LOADED"
                if state == "END":
                    raise RolloutError(
                        f"version {version} failed to load on {server.url} (state END); see the server's log"
                    )
                if state != "AVAILABLE":
                    time.sleep(self.poll_s)

    def _check_golden(self, version: int) -> None:
        path = model_dir(self.repository, self.model) / str(version) / GOLDEN_FILE
        if not path.is_file():
            raise RolloutError(f"version {version} has no golden batch ({path}); re-export it")
        golden = load_golden(path)
        images, expected = golden["images"], golden[contract.PROBABILITY_OUTPUT]
        for server in self._servers():
            result = server.predict(
                Target(self.model, version=version),
                contract.DEFAULT_SIGNATURE,
                {contract.IMAGES_INPUT: images},
            )
            got = np.asarray(result.outputs[contract.PROBABILITY_OUTPUT], dtype=np.float32).reshape(-1)
            if got.shape != expected.shape:
                raise RolloutError(
                    f"version {version} on {server.url}: the golden batch gave {got.shape[0]} "
                    f"scores, expected {expected.shape[0]}"
                )
            worst = float(np.max(np.abs(got - expected)))
            if not worst <= GOLDEN_TOLERANCE:
                raise RolloutError(
                    f"version {version} on {server.url} does not answer its golden batch as exported: "
                    f"max |served - exported| = {worst:.3g} > {GOLDEN_TOLERANCE:g} "
                    f"(served {np.round(got, 4).tolist()}, exported {np.round(expected, 4).tolist()})"
                )
            self.log(
                f"{server.url}: golden batch of {len(expected)} crops matches (max difference {worst:.2g})"
            )

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with file_lock(
            self.repository / LOCK_FILE,
            timeout_s=0,
            busy=lambda: RolloutError(f"another rollout is running on {self.repository} (lock {LOCK_FILE})"),
        ):
            yield
