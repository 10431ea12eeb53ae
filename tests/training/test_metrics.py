"""Metrics, threshold choice and video aggregation on hand-checked numbers."""

from __future__ import annotations

import numpy as np
import pytest

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
    ids, video_labels, scores = by_video(videos, labels, probs, "confident")
    assert ids == ["a", "b"] and video_labels.tolist() == [1, 0]
    assert scores[0] == pytest.approx(0.925)  # two of three confidently fake: their mean
    assert scores[1] == pytest.approx(0.4)
    assert by_video(videos, labels, probs, "mean")[2][0] == pytest.approx(0.65)


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
