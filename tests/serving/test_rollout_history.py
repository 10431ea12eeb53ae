"""The operator's sequences against two dev server replicas, under load from clients that name no
label and clients on ``stable``: no request fails, and every answer comes from a version that was
stable while the request was in flight."""

from __future__ import annotations

import dataclasses
import math
import pathlib
import sys
import time

import numpy as np
import pytest

from deepfake_client.errors import DeepfakeError
from deepfake_client.transport.base import Target
from export.metadata import GOLDEN_FILE
from serving.cli import main as rollout_main
from serving.rollout import Rollout, RolloutError
from tests.serving.load import ThreadedLoad

pytestmark = [pytest.mark.slow, pytest.mark.needs_tf]


@dataclasses.dataclass
class Timeline(Rollout):
    """A rollout that notes when each config change started and when every server had it."""

    changes: list[tuple[float, float, int | None]] = dataclasses.field(default_factory=list)

    def _apply(self, entry, fallback, action, version, golden=None, *, note=None):  # type: ignore[no-untyped-def]
        start = time.monotonic()
        super()._apply(entry, fallback, action, version, golden, note=note)
        self.changes.append((start, time.monotonic(), entry.labels.get("stable")))

    def stable_windows(self, first: int) -> list[tuple[int, float, float]]:
        """(version, from, to): when each stable may answer (both sides may during a change)."""
        windows, current, since = [], first, -math.inf
        for start, end, stable in self.changes:
            if stable != current:
                windows.append((current, since, end))
                current, since = stable, start
        windows.append((current, since, math.inf))
        return windows


class Load(ThreadedLoad):
    """On every replica, over gRPC and REST: a client that names no label and one on ``stable``."""

    def __init__(self, servers) -> None:  # type: ignore[no-untyped-def]
        from deepfake_client import DetectorClient

        super().__init__(join_timeout_s=60)
        self.answers: list[tuple[str, float, float, int]] = []
        self.errors: list[str] = []
        self.clients = []
        for server in servers:
            for url in (server.grpc_url, server.rest_url):
                for name, kwargs in (("no-label", {}), ("stable", {"label": "stable"})):
                    client = DetectorClient(url, timeout_s=30, **kwargs)
                    self.clients.append(client)
                    self.spawn(self._run, f"{name} {url.split(':')[0]}", client)

    def _run(self, kind: str, client) -> None:  # type: ignore[no-untyped-def]
        crops = np.random.default_rng(0).integers(0, 256, size=(2, 64, 64, 3), dtype=np.uint8)
        while not self.stop.is_set():
            sent = time.monotonic()
            try:
                version = int(client.scan_crops(crops).model_version)
                with self.lock:
                    self.answers.append((kind, sent, time.monotonic(), version))
            except DeepfakeError as err:
                with self.lock:
                    self.errors.append(f"{kind}: {type(err).__name__}: {err}")
            time.sleep(0.02)

    def close(self) -> None:
        for client in self.clients:
            client.close()

    def wrong_answers(self, windows: list[tuple[int, float, float]]) -> list[tuple[str, float, int]]:
        """Answers from a version that was not stable at any moment of their request.

        REST answers do not name their version: the client resolves the label first and trusts that
        for ``resolve_ttl_s``, so a REST request counts from that long before it was sent.
        """
        slack = {"grpc": 0.0, "http": max(getattr(c.transport, "resolve_ttl_s", 0.0) for c in self.clients)}
        wrong = []
        for kind, sent, received, version in self.answers:
            start = sent - slack[kind.split()[1]]
            if not any(v == version and a <= received and start <= b for v, a, b in windows):
                wrong.append((kind, sent, version))
        return wrong

    def versions(self) -> dict[str, set[int]]:
        seen: dict[str, set[int]] = {}
        for kind, _, _, version in self.answers:
            seen.setdefault(kind, set()).add(version)
        return seen


@pytest.fixture
def timeline(replicas):  # type: ignore[no-untyped-def]
    """A Timeline rollout over the two replicas, and their servers."""
    repository, servers, transports = replicas
    return Timeline(repository=repository, servers=transports, wait_timeout_s=60), servers


def check(load: Load, rollout: Timeline) -> None:
    assert load.errors == [], load.errors[:5]
    assert len(load.answers) > 50
    wrong = load.wrong_answers(rollout.stable_windows(first=1))
    counts: dict[str, int] = {}
    for kind, *_ in load.answers:
        counts[kind] = counts.get(kind, 0) + 1
    print(
        f"load: {len(load.answers)} answers, {len(load.errors)} failed, {len(wrong)} from a version not "
        f"stable then; per client: {counts}; versions seen: {load.versions()}",
        file=sys.__stderr__,  # shown with -s even where the test captures its own output
    )
    assert wrong == [], wrong[:5]


def test_rollback_after_promotion_returns_to_the_previous_stable_then_abort(
    timeline, exported_version: pathlib.Path
) -> None:
    """publish 2, publish 3, canary 3, promote, rollback: stable is 1 again, never 2; then a canary
    that is aborted never answers a client that did not ask for it."""
    rollout, servers = timeline
    with Load(servers) as load:
        assert rollout.publish(exported_version) == 2
        assert rollout.publish(exported_version) == 3
        time.sleep(0.5)
        assert rollout.canary(3) == 3
        time.sleep(0.5)
        assert rollout.promote() == 3
        time.sleep(2.5)  # longer than the REST clients' resolve_ttl_s: they follow too
        assert rollout.rollback() == 1
        entry = rollout.entry()
        assert dict(entry.labels) == {"stable": 1} and entry.versions == (1,)  # 3 no longer served
        time.sleep(1.5)
        # A canary that is then aborted: stable untouched, the canary no longer served.
        assert rollout.publish(exported_version) == 4
        assert rollout.canary(4) == 4
        time.sleep(1.0)
        assert rollout.abort() == 4
        entry = rollout.entry()
        assert dict(entry.labels) == {"stable": 1} and entry.versions == (1,)
        time.sleep(1.0)
    check(load, rollout)
    seen = load.versions()
    assert set().union(*seen.values()) == {1, 3}, seen  # never 2 (never stable), never 4 (a canary)
    assert all(3 in versions for versions in seen.values()), seen  # every client followed the promotion
    images = {"images": np.zeros((1, 64, 64, 3), np.uint8)}
    for transport in rollout.servers:
        assert transport.predict(Target(label="stable"), "serving_default", images).version == 1
    with pytest.raises(RolloutError, match="--force"):
        rollout.canary(4)
    with pytest.raises(RolloutError, match="--force"):
        rollout.canary(3)  # rolled back from
    status = rollout.status(last=0)
    assert status["previous_stables"] == [] and status["history_agrees"]


def test_repeated_rollbacks_walk_back_the_stables_only(
    timeline, exported_version: pathlib.Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    """stable 1 -> 2 -> 4 (3 published, never stable), then rollback, rollback: 4 -> 2 -> 1, then
    refused with nothing changed; the retired version 1 is served again before it is labelled."""
    rollout, servers = timeline
    with Load(servers) as load:
        for version in (2, 3, 4):
            assert rollout.publish(exported_version) == version
        rollout.canary(2)
        rollout.promote()
        time.sleep(0.5)
        rollout.canary(4)
        rollout.promote()  # keeps 2 and 4 served, retires 1
        assert rollout.entry().versions == (2, 4)
        time.sleep(1.0)
        assert rollout.rollback() == 2
        assert rollout.entry().versions == (2,)
        time.sleep(1.0)
        # Version 1 as if published from elsewhere, without a golden batch: refused unless forced.
        (rollout.repository / "deepfake_detector" / "1" / GOLDEN_FILE).unlink()
        with pytest.raises(RolloutError, match="--force"):
            rollout.rollback()
        assert rollout.entry().versions == (2,) and dict(rollout.entry().labels) == {"stable": 2}
        assert rollout.rollback(force=True) == 1  # 1 was retired: served again, then labelled
        assert rollout.entry().versions == (1,)
        time.sleep(1.0)
        before = rollout.config_path.read_text()
        with pytest.raises(RolloutError, match="no stable before it"):
            rollout.rollback()
        assert rollout.config_path.read_text() == before
        time.sleep(0.5)
    check(load, rollout)
    assert 3 not in set().union(*load.versions().values())
    actions = [r.action for r in rollout.history()]
    assert actions.count("rollback") == 2 and actions.count("revert") == 1
    goldens = [r.golden for r in rollout.history() if r.action == "rollback"]
    assert goldens[0]["crops"] > 0 and goldens[1] == {"skipped": "no golden batch (--force)"}
    # The CLI sees the same history.
    urls = [f"--server={s.grpc_url}" for s in servers]
    assert rollout_main(["status", "--repository", str(rollout.repository), *urls, "--last", "3"]) == 0
    assert '"rollback"' in capsys.readouterr().out
