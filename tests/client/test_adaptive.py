"""Adaptive sampling: the sequential test, the rounds, a scan that sends fewer faces for the same label."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest

from deepfake_client import DetectorClient
from deepfake_client.adaptive import round_size, score_adaptively, settled, spread_order
from deepfake_client.errors import InvalidInputError

FIRST = round_size(32)  # a quarter of 32 faces


def test_rounds_are_quarters_of_at_least_four() -> None:
    assert [round_size(n) for n in (1, 4, 10, 24, 32, 33)] == [4, 4, 4, 6, 8, 9]


def test_spread_order_covers_everything_and_its_prefixes_are_spread() -> None:
    for n in (0, 1, 2, 5, 24, 32, 33):
        assert sorted(spread_order(n)) == list(range(n))
    assert spread_order(32)[:8] == [0, 16, 8, 24, 4, 20, 12, 28]  # every 4th frame first
    assert sorted(spread_order(32)[:16]) == list(range(0, 32, 2))


@pytest.mark.parametrize(
    "scores, expected",
    [
        ([0.95, 0.97, 0.9, 0.96, 0.93, 0.98, 0.94, 0.92], True),  # clearly fake
        ([0.02, 0.05, 0.01, 0.03, 0.04, 0.02, 0.06, 0.01], True),  # clearly real
        ([0.52, 0.51, 0.53, 0.52, 0.51, 0.52, 0.53, 0.52], False),  # identical, near the threshold
        ([0.95, 0.05, 0.9, 0.1, 0.97, 0.02, 0.92, 0.08], False),  # split
        ([0.99], False),  # one score decides nothing
    ],
)
def test_settled(scores: list[float], expected: bool) -> None:
    assert settled(scores, 0.5, "confident") is expected


def _scorer(truth: np.ndarray, sent: list[list[int]]):  # type: ignore[no-untyped-def]
    def score(positions: list[int]) -> np.ndarray:
        sent.append(positions)
        return truth[positions]

    return score


def test_rounds_stop_early_on_clear_tracks_and_go_on_on_unclear_ones() -> None:
    rng = np.random.default_rng(0)
    clear = rng.uniform(0.9, 0.99, 32)  # track 0: clearly fake
    unclear = rng.uniform(0.25, 0.75, 32)  # track 1: all over the place
    passing = np.array([0.9, 0.9, 0.9])  # track 2: a face seen in 3 frames (minor)
    truth = np.concatenate([clear, unclear, passing])
    tracks = [0] * 32 + [1] * 32 + [2] * 3
    sent: list[list[int]] = []
    probs = score_adaptively(tracks, _scorer(truth, sent), threshold=0.5, aggregation="confident")
    scored = ~np.isnan(probs)
    assert scored[:32].sum() == FIRST  # settled after the first round
    assert scored[32:64].all()  # never settled: every face sent
    assert scored[64:].all()  # minor: its first round is all it has
    assert len(sent) == 4 and len(sent[0]) == FIRST + FIRST + 3  # one request per round, 4 rounds
    assert np.array_equal(probs[scored], truth[scored])


def test_scan_sends_fewer_faces_for_the_same_label(
    server_url: str, fake_serving, face_video: pathlib.Path
) -> None:  # type: ignore[no-untyped-def]
    # The fake server's score is a crop's mean pixel / 255 (about 0.45 for this face): a threshold
    # of 0.1 makes it a clear fake, 0.9 a clear real, 0.45 a toss-up.
    for threshold, label, clear in ((0.1, "FAKE", True), (0.9, "REAL", True), (0.45, None, False)):
        verdicts = {}
        for sampling in ("all", "adaptive"):
            with DetectorClient(server_url, version=1, threshold=threshold, sampling=sampling) as client:
                verdicts[sampling] = client.scan(face_video)
        full, adaptive = verdicts["all"], verdicts["adaptive"]
        assert adaptive.label == full.label and (label is None or full.label == label)
        assert adaptive.faces_found == len(full.faces) == 32
        if clear:
            assert len(adaptive.faces) == FIRST and adaptive.frames_used == FIRST
        row = adaptive.to_dict(faces=False)
        assert row["sampling"] == "adaptive" and row["faces_found"] == 32
        assert row["face_count"] == len(adaptive.faces) and row["frames_used"] <= row["frames"] == 32
        assert full.to_dict()["frames_used"] == 32 and full.to_dict()["sampling"] == "all"


def test_unknown_sampling_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="sampling"):
        DetectorClient("grpc://127.0.0.1:9", sampling="some")


def test_scan_cli_adaptive_reports_the_faces_used(fake_serving, face_video: pathlib.Path, capsys) -> None:  # type: ignore[no-untyped-def]
    import orjson

    from deepfake_client.cli import main

    args = [str(face_video), "--server", fake_serving.grpc_url, "--version", "1", "--json", "--quiet"]
    assert main([*args, "--adaptive", "--threshold", "0.1"]) == 0
    row = orjson.loads(capsys.readouterr().out.splitlines()[-1])
    assert row["sampling"] == "adaptive" and row["label"] == "FAKE"
    assert row["face_count"] == FIRST < row["faces_found"] == 32 and row["frames_used"] == FIRST
