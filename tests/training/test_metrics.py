"""Metrics, threshold choice and video aggregation on hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

from training.data import Crops
from training.metrics import by_video, choose_threshold, compute_metrics, equal_error_rate


def test_metrics_by_hand():
    labels = np.array([0, 0, 0, 1, 1, 1])
    scores = np.array([0.1, 0.4, 0.6, 0.35, 0.8, 0.9])
    m = compute_metrics(labels, scores, 0.5)
    assert m["confusion"] == {"tn": 2, "fp": 1, "fn": 1, "tp": 2}
    assert m["accuracy"] == pytest.approx(4 / 6) and m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3) and m["f1"] == pytest.approx(2 / 3)
    assert m["roc_auc"] == pytest.approx(7 / 9)
    expected_loss = -np.mean(np.log([0.9, 0.6, 0.4, 0.35, 0.8, 0.9]))
    assert m["log_loss"] == pytest.approx(expected_loss)
    eer, _ = equal_error_rate(labels, scores)
    assert eer == pytest.approx(1 / 3)


def test_threshold_sits_between_the_classes():
    labels = np.array([0, 0, 1, 1])
    assert choose_threshold(labels, np.array([0.1, 0.3, 0.7, 0.9])) == pytest.approx(0.5)
    assert choose_threshold(labels, np.array([0.01, 0.02, 0.05, 0.9])) == pytest.approx(0.035)
    assert choose_threshold(np.array([1, 1]), np.array([0.2, 0.9])) == 0.5


def test_video_aggregation_uses_the_clients_rule():
    videos = ["a", "a", "a", "b", "b"]
    labels = np.array([1, 1, 1, 0, 0])
    probs = np.array([0.9, 0.95, 0.1, 0.3, 0.5])
    crops = Crops([""] * 5, labels, videos, [0, 1, 2, 0, 1])
    ids, video_labels, scores, _ = by_video(crops, probs, "confident")
    assert ids == ["a", "b"] and video_labels.tolist() == [1, 0]
    assert scores[0] == pytest.approx(0.925)  # two of three confidently fake: their mean
    assert scores[1] == pytest.approx(0.4)
    assert by_video(crops, probs, "mean")[2][0] == pytest.approx(0.65)


def test_mean_protocol_takes_each_frames_highest_face_and_no_face_videos_score_one_half():
    # video a: frame 0 has two faces (0.2, 0.8), frame 1 one face (0.4): SBI's mean of per-frame max
    crops = Crops(
        [""] * 5,
        np.array([1, 1, 1, 0, 0]),
        ["a", "a", "a", "b", "b"],
        [0, 0, 1, 0, 1],
        ["Deepfakes"] * 3 + ["original"] * 2,
        (("c", 1, "FaceSwap"), ("d", 0, "original")),
    )
    probs = np.array([0.2, 0.8, 0.4, 0.1, 0.3])
    ids, labels, scores, sources = by_video(crops, probs, "mean")
    assert ids == ["a", "b", "c", "d"] and labels.tolist() == [1, 0, 1, 0]
    assert scores.tolist() == pytest.approx([0.6, 0.2, 0.5, 0.5])  # (0.8 + 0.4) / 2; no face: 0.5
    assert sources == ["Deepfakes", "original", "FaceSwap", "original"]
    assert by_video(crops, probs, "confident")[2][0] == pytest.approx(np.mean([0.2, 0.8, 0.4]))


def test_auc_per_manipulation_method_against_all_reals():
    from training.evaluate import split_report

    rng = np.random.default_rng(0)
    methods = ["Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter"]
    videos, labels, sources, probs = [], [], [], []
    for v in range(20):  # 20 originals scored low, 20 fakes per method; Face2Face is the hard one
        for method, label, centre in [("original", 0, 0.3)] + [
            (m, 1, 0.32 if m == "Face2Face" else 0.8) for m in methods
        ]:
            for _ in range(2):
                videos.append(f"{method}/{v}")
                labels.append(label)
                sources.append(method)
                probs.append(float(np.clip(rng.normal(centre, 0.1), 0, 1)))
    crops = Crops([""] * len(videos), np.array(labels), videos, [0, 1] * (len(videos) // 2), sources)
    report = split_report(crops, np.array(probs), threshold=0.5, aggregate="mean")
    by_source = report["by_source"]
    assert set(by_source) == {*methods, "classic_mean"}
    assert by_source["Deepfakes"]["video_auc"] > 0.95 > 0.75 > by_source["Face2Face"]["video_auc"]
    assert by_source["Deepfakes"]["video_fakes"] == 20 and by_source["Deepfakes"]["frame_fakes"] == 40
    classic = [by_source[m]["video_auc"] for m in methods[:4]]
    assert by_source["classic_mean"]["video_auc"] == pytest.approx(np.mean(classic))
    assert report["frame"]["roc_auc"] is not None and report["video"]["roc_auc"] is not None
    assert "highest face score" in report["protocol"]["video"] and report["video"]["aggregate"] == "mean"


def test_calibrated_threshold_stays_at_one_half_unless_validation_clearly_disagrees():
    labels = np.array([0] * 5 + [1] * 5)
    # separated with a gap far below 0.5 (the middle would be 0.111): 0.5 loses one video at most
    gap_low = np.array([0.001, 0.006, 0.007, 0.009, 0.041, 0.181, 0.748, 0.865, 0.921, 0.998])
    assert choose_threshold(labels, gap_low, "youden") == pytest.approx(0.111)
    assert choose_threshold(labels, gap_low, "calibrated") == 0.5
    # every score above 0.5: 0.5 would call all real videos fake; the threshold moves into the
    # run of acceptable thresholds (0.70, 0.92], a quarter of its width inside its lower edge
    shifted = np.array([0.6, 0.62, 0.65, 0.7, 0.72, 0.9, 0.92, 0.95, 0.97, 0.99])
    assert choose_threshold(labels, shifted, "calibrated") == pytest.approx(0.755)
    assert compute_metrics(labels, shifted, 0.755)["accuracy"] == 1.0
