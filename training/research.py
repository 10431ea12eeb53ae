"""Evaluation a researcher can publish: cross-dataset tables, PR and calibration, per-video predictions.

Everything here works on face probabilities already computed (``training.evaluate`` predicts);
video scores are aggregated as the client does (``training.metrics.by_video``). Files go into the
evaluation's own folder (``RUN/eval/<name>/``), never over the training run's plots:

- ``predictions_<set>.csv``: one row per video (id, source, label, score, prediction, faces);
- ``pr_<set>.png`` with average precision, ``calibration_<set>.png`` (reliability diagram) with
  log loss (DFDC's metric) and the expected calibration error;
- ``cross_dataset.json|csv|md``: train on one prepared set, test on the others, one row per set.
"""

from __future__ import annotations

import csv
import pathlib

import numpy as np

from training.metrics import by_video, compute_metrics

CALIBRATION_BINS = 10
TABLE_COLUMNS = (
    ("videos", "videos"),
    ("video_auc", "video AUC"),
    ("frame_auc", "frame AUC"),
    ("average_precision", "AP"),
    ("log_loss", "log loss"),
    ("ece", "ECE"),
    ("eer", "EER"),
    ("accuracy", "accuracy"),
)


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = CALIBRATION_BINS) -> float:
    """ECE: the mean over equal-width score bins of |fraction of fakes - mean score|, weighted by size."""
    labels, scores = np.asarray(labels, dtype=np.float64), np.asarray(scores, dtype=np.float64)
    if not len(labels):
        return 0.0
    index = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        inside = index == b
        if inside.any():
            error += inside.sum() * abs(labels[inside].mean() - scores[inside].mean())
    return float(error / len(labels))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Average precision of the fake class (area under the PR curve), None with one class present."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(labels, scores)) if len(np.unique(labels)) == 2 else None


def score_summary(crops, probabilities: np.ndarray, aggregate: str) -> dict:
    """Frame and video ROC-AUC, video average precision and log loss of one scored split."""
    from training.metrics import _auc

    _, labels, scores, _ = by_video(crops, probabilities, aggregate)
    video = compute_metrics(labels, scores, 0.5)
    return {
        "frame_auc": _auc(crops.labels, probabilities),
        "video_auc": video["roc_auc"],
        "average_precision": average_precision(labels, scores),
        "log_loss": video["log_loss"],
    }


def video_predictions(crops, probabilities: np.ndarray, *, aggregate: str, threshold: float) -> list[dict]:
    """One row per video: id, source, label, score, predicted label, number of faces scored."""
    ids, labels, scores, sources = by_video(crops, probabilities, aggregate)
    faces: dict[str, int] = {}
    for video in crops.videos:
        faces[video] = faces.get(video, 0) + 1
    return [
        {
            "video": video,
            "source": source,
            "label": "FAKE" if label else "REAL",
            "fake_probability": round(float(score), 6),
            "predicted": ("FAKE" if score >= threshold else "REAL") if faces.get(video) else "NO_FACE",
            "faces": faces.get(video, 0),
        }
        for video, label, score, source in zip(ids, labels, scores, sources, strict=True)
    ]


def write_csv(rows: list[dict], path: pathlib.Path) -> pathlib.Path:
    """``rows`` (dicts with the same keys) as a CSV file with a header."""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]) if rows else ["video"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def publication_metrics(report: dict) -> dict:
    """The cross-dataset row of one scored set: its ``split_report`` with AP and ECE added."""
    labels, scores = report["_curves"]["video"]
    return {
        "videos": report["video"]["count"],
        "video_auc": report["video"]["roc_auc"],
        "frame_auc": report["frame"]["roc_auc"],
        "average_precision": average_precision(labels, scores),
        "log_loss": report["video"]["log_loss"],
        "ece": expected_calibration_error(labels, scores),
        "eer": report["video"]["eer"],
        "accuracy": report["video"]["accuracy"],
    }


def write_set_plots(folder: pathlib.Path, name: str, report: dict) -> list[str]:
    """ROC, confusion, PR and calibration plots of one scored set, named after it."""
    from training.plots import plot_calibration, plot_confusion, plot_pr, plot_roc

    curves = report["_curves"]
    threshold = report["video"]["threshold"]
    return [
        plot_roc(curves, folder / f"roc_{name}.png", f"ROC, {name}").name,
        plot_confusion(
            report["video"]["confusion"],
            folder / f"confusion_{name}.png",
            f"{name}, video, t={threshold:.2f}",
        ).name,
        plot_pr(curves, folder / f"pr_{name}.png", f"precision-recall, {name}").name,
        plot_calibration(
            curves["video"], folder / f"calibration_{name}.png", f"calibration, {name}, video level"
        ).name,
    ]


def _cell(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def write_table(rows: dict[str, dict], folder: pathlib.Path, stem: str = "cross_dataset") -> list[str]:
    """The cross-dataset table ``{set: row}`` as JSON, CSV and Markdown files in ``folder``."""
    import json

    (folder / f"{stem}.json").write_text(json.dumps(rows, indent=2))
    write_csv([{"test_set": name, **row} for name, row in rows.items()], folder / f"{stem}.csv")
    lines = [
        "| test set | " + " | ".join(title for _, title in TABLE_COLUMNS) + " |",
        "| --- |" + " ---: |" * len(TABLE_COLUMNS),
    ]
    lines += [
        f"| {name} | " + " | ".join(_cell(row.get(key)) for key, _ in TABLE_COLUMNS) + " |"
        for name, row in rows.items()
    ]
    (folder / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return [f"{stem}.json", f"{stem}.csv", f"{stem}.md"]


def chosen_epoch(history_csv: pathlib.Path, monitor: str) -> int | None:
    """The 1-based epoch whose weights the run kept: the first best ``val_<monitor>`` of its history.

    Keras' ``ModelCheckpoint(save_best_only=True)`` saves only on a strict improvement, so the
    first epoch reaching the best value is the one in ``model.keras``.
    """
    if not history_csv.is_file():
        return None
    with history_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    key = f"val_{monitor}"
    values = [float(r[key]) for r in rows if r.get(key) not in (None, "")]
    if not values or len(values) != len(rows):
        return None
    best = np.argmax(values) if monitor == "auc" else np.argmin(values)
    return int(rows[int(best)]["epoch"]) + 1
