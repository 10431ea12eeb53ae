"""Rolling a new model version out, and back, without downtime (TensorFlow-free).

The model config file is what the server reads: every step is an atomic rewrite of
``models.config`` (TF Serving polls it) and, over gRPC, the same content sent with
``HandleReloadConfigRequest`` so the change takes effect now. The release history beside it
(``export.history``) records every change, is reconciled with the config before each step, and
decides what ``stable`` was. The steps keep TF Serving's rules:

- a version is added to the served set first, and a label is moved to it only once the server
  reports it ``AVAILABLE`` and it answers its golden batch (TF Serving refuses a whole config whose
  label points elsewhere);
- TF Serving loads a new version before it unloads an old one, so requests never fail in between:
  labels move first, versions stop being served after;
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
from export import history
from export.history import RolloutError
from export.metadata import GOLDEN_FILE, GOLDEN_TOLERANCE, load_golden
from export.modelconfig import ModelEntry, ServingConfig, load_config
from export.publish import DIR_MODE, list_versions, model_dir

__all__ = ["Rollout", "RolloutError"]

SEQUENCE_GOLDEN = "sequence_frames"  # in a golden batch: the version has the temporal model's signature


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
        self.config_path = pathlib.Path(self.config_path or self.repository / history.CONFIG_FILE)

    # -- reading -------------------------------------------------------------------------------

    def config(self) -> ServingConfig:
        return load_config(self.config_path)

    def entry(self) -> ModelEntry:
        return self.config().model(self.model)

    def published(self) -> list[int]:
        return list_versions(model_dir(self.repository, self.model))

    def history(self) -> list[history.Release]:
        """This model's release records, oldest first."""
        return [r for r in history.read_history(self.repository) if r.model == self.model]

    def server_states(self) -> dict[int, str]:
        """Version states on the first server."""
        return self._servers()[0].status(Target(self.model))

    def status(self, last: int = 10) -> dict:
        """Versions on disk, in the config and on the server, the labels, and the last releases."""
        entry = self.entry()
        states: dict[int, str] | str
        try:
            states = self.server_states() if self.servers else "no server given"
        except DeepfakeError as err:
            states = f"unreachable: {err}"
        records = self.history()
        text = self.config_path.read_text(encoding="utf-8")
        return {
            "model": self.model,
            "config": str(self.config_path),
            "published": self.published(),
            "served": list(entry.versions) if entry.policy == "specific" else entry.policy,
            "labels": dict(entry.labels),
            "server": {str(k): v for k, v in states.items()} if isinstance(states, dict) else states,
            "previous_stables": history.stable_stack(records, self.model)[:-1],
            "history_agrees": bool(records) and records[-1].config_sha256 == history.sha256_text(text),
            "history": [r.summary() for r in records[-last:]] if last else [],
        }

    # -- steps -----------------------------------------------------------------------------------

    def publish(
        self,
        source: str | pathlib.Path,
        *,
        version: int | None = None,
        server_base_path: str | None = None,
        mode: int = DIR_MODE,
    ) -> int:
        """Publish a run folder or an exported SavedModel as a new version; does not serve it.

        The first version of a repository also gets the initial config (served, labelled stable).
        """
        source = pathlib.Path(source)
        options = {
            "config_path": self.config_path,
            "server_base_path": server_base_path,
            "mode": mode,
            "log": self.log,
        }
        if (source / "saved_model.pb").is_file():
            from export.publish import copy_saved_model, publish_version

            path = publish_version(
                self.repository, copy_saved_model(source), version=version, model_name=self.model, **options
            )
            number = int(path.name)
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
            number = export_run(
                source, self.repository, version=version, model_name=self.model, publish_options=options
            ).version
        else:
            raise NotFoundError(f"{source}: neither a SavedModel directory nor a training run (model.keras)")
        self.log(f"published version {number}")
        return number

    def canary(self, version: int | None = None, *, force: bool = False) -> int:
        """Serve ``version`` (default: the newest published), check its golden batch, label it canary.

        A version that was rolled back from or aborted needs ``force``.
        """
        with self._lock() as records:
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
            if version in history.withdrawn(records, self.model) and not force:
                raise RolloutError(
                    f"version {version} was rolled back or aborted before; canary it again with --force"
                )
            before = entry
            if version not in entry.versions:
                self._apply(entry.replace(versions=entry.versions + (version,)), before, "serve", version)
            try:
                self._wait_available(version)
                golden = self._check_golden(version)
            except DeepfakeError as err:
                self.log(f"version {version} refused; restoring the previous config")
                self._apply(before, before, "revert", version, note=str(err))
                raise
            # Never stable as well, even where no stable exists: a canary answers only clients that ask
            # for it, and only `promote` makes a version stable.
            labels = dict(entry.labels) | {contract.CANARY_LABEL: version}
            self._apply(self._specific_entry().replace(labels=labels), before, "canary", version, golden)
            self.log(f"version {version} is AVAILABLE, matches its golden batch, and is labelled canary")
            return version

    def promote(self, keep: int = 2) -> int:
        """``stable`` := ``canary``; keep serving the ``keep - 1`` previous stables, stop the rest."""
        with self._lock():
            entry = self._specific_entry()
            canary = entry.labels.get(contract.CANARY_LABEL)
            if canary is None:
                raise RolloutError("there is no canary to promote (run `deepfake-rollout canary` first)")
            self._wait_available(canary)
            labels = {k: v for k, v in entry.labels.items() if k != contract.CANARY_LABEL}
            labels[contract.STABLE_LABEL] = canary
            self._apply(entry.replace(labels=labels), entry, "promote", canary)
            stables = history.stable_stack(self.history(), self.model)
            kept = set(stables[-max(1, keep) :]) | set(labels.values())
            versions = tuple(v for v in entry.versions if v in kept)
            retired = sorted(set(entry.versions) - set(versions))
            if retired:
                self._retire(versions)
            self.log(f"stable -> version {canary}" + (f"; retired {retired}" if retired else ""))
            return canary

    def rollback(self, *, force: bool = False) -> int:
        """``stable`` back to the previous stable in the release history; its successor and any
        canary stop being served. The previous stable is served again first if it was retired, and
        answers its golden batch before the label moves; ``force`` lets a version that has no golden
        batch (published from elsewhere) through, a mismatch never."""
        with self._lock() as records:
            entry = self._specific_entry()
            stable = entry.labels.get(contract.STABLE_LABEL)
            if stable is None:
                raise RolloutError("there is no stable version to roll back from")
            stables = history.stable_stack(records, self.model)
            if len(stables) < 2 or stables[-1] != stable:
                raise RolloutError(
                    f"stable is version {stable} and the release history has no stable before it; "
                    "nothing was changed"
                )
            previous = stables[-2]
            if previous not in self.published():
                raise RolloutError(
                    f"the previous stable, version {previous}, is no longer published in "
                    f"{model_dir(self.repository, self.model)}; nothing was changed"
                )
            if previous not in entry.versions:
                self._apply(entry.replace(versions=entry.versions + (previous,)), entry, "serve", previous)
            try:
                self._wait_available(previous)
                golden = self._check_golden(
                    previous, allow_missing=force, missing_hint="roll back with --force to skip the check"
                )
            except DeepfakeError as err:
                self._apply(entry, entry, "revert", previous, note=str(err))
                raise
            canary = entry.labels.get(contract.CANARY_LABEL)
            labels = {k: v for k, v in entry.labels.items() if k != contract.CANARY_LABEL}
            labels[contract.STABLE_LABEL] = previous
            # Labels move first (to versions that are loaded), then the versions left stop being served.
            self._apply(
                self._specific_entry().replace(labels=labels),
                entry,
                history.ROLLBACK,
                stable,
                golden,
                note=f"stable {stable} -> {previous}",
            )
            dropped = ({stable, canary} - {None}) - set(labels.values())
            self._retire(tuple(v for v in self._specific_entry().versions if v not in dropped))
            self.log(f"stable -> version {previous} (was {stable}); no longer served: {sorted(dropped)}")
            return previous

    def abort(self) -> int:
        """Drop the canary: its label goes, and it stops being served; stable is untouched."""
        with self._lock():
            entry = self._specific_entry()
            canary = entry.labels.get(contract.CANARY_LABEL)
            if canary is None:
                raise RolloutError("there is no canary to abort")
            labels = {k: v for k, v in entry.labels.items() if k != contract.CANARY_LABEL}
            self._apply(entry.replace(labels=labels), entry, "abort", canary)
            if canary not in labels.values():
                self._retire(tuple(v for v in entry.versions if v != canary))
            self.log(f"canary {canary} dropped; stable is version {labels.get(contract.STABLE_LABEL)}")
            return canary

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

    def _retire(self, versions: tuple[int, ...]) -> None:
        """Serve only ``versions`` (after the labels have left the others); a refusal keeps serving all."""
        current = self._specific_entry()
        self._apply(current.replace(versions=versions), current, "retire", None)

    def _apply(
        self,
        entry: ModelEntry,
        fallback: ModelEntry,
        action: str,
        version: int | None,
        golden: dict | None = None,
        *,
        note: str | None = None,
    ) -> None:
        """Record and write the config with ``entry``, and send it to the servers that take reloads."""
        config = self.config().with_model(entry)
        history.record_change(
            self.repository,
            self.config_path,
            config,
            action=action,
            model=self.model,
            version=version,
            golden=golden,
            note=note,
        )
        reloads = [r for r in (getattr(s, "reload_config", None) for s in self.servers) if r is not None]
        try:
            for reload in reloads:
                reload(config.to_proto())
        except DeepfakeError as err:
            # TF Serving swaps in a refused config before validating it: send the good one back.
            good = self.config().with_model(fallback)
            history.record_change(
                self.repository,
                self.config_path,
                good,
                action="revert",
                model=self.model,
                version=version,
                note=f"the server refused '{action}': {err}",
            )
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

    def _check_golden(
        self, version: int, *, allow_missing: bool = False, missing_hint: str = "re-export it"
    ) -> dict:
        """Every server answers ``version``'s golden batch as it was exported; what was measured."""
        path = model_dir(self.repository, self.model) / str(version) / GOLDEN_FILE
        if not path.is_file():
            if allow_missing:
                self.log(f"version {version} has no golden batch ({path}): not checked (--force)")
                return {"skipped": "no golden batch (--force)"}
            raise RolloutError(f"version {version} has no golden batch ({path}); {missing_hint}")
        golden = load_golden(path)
        images, expected = golden["images"], golden[contract.PROBABILITY_OUTPUT]
        worst_of_all = 0.0
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
            worst_of_all = max(worst_of_all, worst)
            what = f"{len(expected)} crops"
            if SEQUENCE_GOLDEN in golden:  # a version with the temporal model: its sequence signature too
                worst_of_all = max(worst_of_all, self._check_golden_sequences(server, version, golden))
                what += f" and {len(golden[SEQUENCE_GOLDEN])} sequences"
            self.log(f"{server.url}: golden batch of {what} matches (max difference {worst_of_all:.2g})")
        checked = {
            "crops": len(expected),
            "max_abs_diff": worst_of_all,
            "servers": [s.url for s in self._servers()],
        }
        if SEQUENCE_GOLDEN in golden:
            checked["sequences"] = len(golden[SEQUENCE_GOLDEN])
        return checked

    def _check_golden_sequences(self, server: Transport, version: int, golden: dict) -> float:
        """``server`` answers the golden sequences through the ``sequence`` signature as exported."""
        result = server.predict(
            Target(self.model, version=version),
            contract.SEQUENCE_SIGNATURE,
            {
                contract.SEQUENCE_FRAMES_INPUT: golden[SEQUENCE_GOLDEN],
                contract.SEQUENCE_LENGTHS_INPUT: golden["sequence_lengths"],
            },
        )
        got = np.asarray(result.outputs[contract.PROBABILITY_OUTPUT], dtype=np.float32).reshape(-1)
        expected = golden["sequence_probability"]
        worst = float(np.max(np.abs(got - expected))) if got.shape == expected.shape else float("inf")
        if not worst <= GOLDEN_TOLERANCE:
            raise RolloutError(
                f"version {version} on {server.url} does not answer its golden sequences as exported: "
                f"max |served - exported| = {worst:.3g} > {GOLDEN_TOLERANCE:g} "
                f"(served {np.round(got, 4).tolist()}, exported {np.round(expected, 4).tolist()})"
            )
        return worst

    @contextlib.contextmanager
    def _lock(self) -> Iterator[list[history.Release]]:
        """The state lock (a second rollout is refused at once), then the history reconciled."""
        if not self.repository.is_dir():  # a typo must not leave a new folder behind
            raise NotFoundError(f"{self.repository}: no such model repository")
        with history.state_lock(
            self.repository,
            timeout_s=0,
            busy=lambda: RolloutError(
                f"another rollout is running on {self.repository} (lock {history.STATE_LOCK_FILE})"
            ),
        ):
            records = history.reconcile(self.repository, self.config_path, self.log)
            yield [r for r in records if r.model == self.model]  # reconcile read them: not again
