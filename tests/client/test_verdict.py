"""Aggregation rules, labels, tracks and the verdict's JSON and table forms."""

from __future__ import annotations

import json

import pytest

from deepfake_client.errors import InvalidInputError
from deepfake_client.faces import Box
from deepfake_client.tracks import link_tracks
from deepfake_client.verdict import FaceScore, aggregate, decide, format_table, make_verdict


def test_confident_takes_the_confident_fakes_when_at_least_40_percent() -> None:
    scores = [0.9, 0.95, 0.1, 0.5, 0.3]  # 2 of 5 = 40 % above 0.8
    assert aggregate(scores) == pytest.approx(0.925)
    assert aggregate([0.9, 0.1, 0.1, 0.5, 0.3, 0.4]) == pytest.approx(sum([0.9, 0.1, 0.1, 0.5, 0.3, 0.4]) / 6)


def test_confident_takes_the_confident_reals_when_at_least_90_percent() -> None:
    scores = [0.1] * 9 + [0.6]
    assert aggregate(scores) == pytest.approx(0.1)
    assert aggregate([0.1] * 8 + [0.6, 0.6]) == pytest.approx((0.8 + 1.2) / 10)


def test_mean_max_and_bad_input() -> None:
    assert aggregate([0.2, 0.4], "mean") == pytest.approx(0.3)
    assert aggregate([0.2, 0.4], "max") == pytest.approx(0.4)
    with pytest.raises(InvalidInputError):
        aggregate([])
    with pytest.raises(InvalidInputError):
        aggregate([0.5], "median")


def test_no_face_is_never_real() -> None:
    assert decide(None, 0.5) == "NO_FACE"
    assert decide(0.5, 0.5) == "FAKE" and decide(0.49, 0.5) == "REAL"
    verdict = make_verdict(
        source="x.mp4",
        kind="video",
        faces=[],
        threshold=0.5,
        aggregation="confident",
        model_name="m",
        model_version=3,
        target="label:stable",
        frames=32,
    )
    assert verdict.label == "NO_FACE" and verdict.score is None


def test_tracks_separate_two_people_and_follow_motion() -> None:
    left = [Box(100 + 10 * i, 100, 80, 80) for i in range(5)]
    right = [Box(600 - 10 * i, 120, 90, 90) for i in range(5)]
    frames, boxes = [], []
    for i in range(5):
        frames += [i * 10, i * 10]
        boxes += [right[i], left[i]] if i % 2 else [left[i], right[i]]
    ids = link_tracks(frames, boxes)
    left_ids = {ids[k] for k, b in enumerate(boxes) if b in left}
    right_ids = {ids[k] for k, b in enumerate(boxes) if b in right}
    assert len(left_ids) == 1 and len(right_ids) == 1 and left_ids != right_ids


def test_track_survives_a_missed_frame_but_not_a_jump() -> None:
    ids = link_tracks(
        [0, 1, 3, 4], [Box(0, 0, 50, 50), Box(2, 0, 50, 50), Box(4, 0, 50, 50), Box(500, 500, 50, 50)]
    )
    assert ids == [0, 0, 0, 1]


def test_video_score_is_the_worst_major_track() -> None:
    faces = [FaceScore(i, i / 10, Box(0, 0, 10, 10), 0.9, 0.1, track=0) for i in range(10)]
    faces += [FaceScore(i, i / 10, Box(50, 0, 10, 10), 0.9, 0.95, track=1) for i in range(10)]
    faces += [FaceScore(3, 0.3, Box(90, 0, 10, 10), 0.5, 0.99, track=2)]  # one passing face: minor
    verdict = make_verdict(
        source="two.mp4",
        kind="video",
        faces=faces,
        threshold=0.5,
        aggregation="confident",
        model_name="deepfake_detector",
        model_version=4,
        target="label:stable",
        frames=10,
        timings_s={"decode": 0.5, "predict": 0.1},
    )
    assert [t.label for t in verdict.tracks] == ["REAL", "FAKE", "FAKE"]
    assert verdict.tracks[2].minor and verdict.score == pytest.approx(0.95) and verdict.label == "FAKE"
    data = json.loads(verdict.to_json())
    assert data["model_version"] == 4 and data["face_count"] == 21 and len(data["faces"]) == 21
    table = format_table([verdict])
    assert "deepfake_detector/4" in table and "track 1: FAKE" in table and "(minor)" in table
