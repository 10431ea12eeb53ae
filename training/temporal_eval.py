"""Video-level scores of the temporal model beside the frame model's: side by side, with one ROC figure.

Per video: the frame score is the client's aggregate of its face scores (``training.metrics``);
the temporal score is, per track, the mean probability of its windows and then the highest track
(a video is fake if any person in it is, as in ``deepfake_client.verdict``); the combined score is
the client's rule (``deepfake_client.sequences.combine``: the larger of the two). A video without
a track long enough for a sequence has no temporal score: temporal-only scores it 0.5 (as a video
without a face), combined falls back to its frame score, as the client does.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from deepfake_client.errors import InvalidInputError
from deepfake_client.sequences import combine
from training.metrics import NO_FACE_SCORE, by_video, choose_threshold, compute_metrics
from training.temporal_data import Sequences

REPORTED = ("roc_auc", "log_loss", "accuracy", "balanced_accuracy", "count", "threshold")


def sequence_batch_size(config) -> int:
    """Sequences per batch: a quarter of the frame batch (each sequence is ``T`` crops), at least 2."""
    return max(2, config.batch_size // 4)


def predict_sequences(model, sequences: Sequences, config) -> np.ndarray:
    """Fake probabilities of every sequence (in order)."""
    import dataclasses

    from training.temporal_data import sequence_dataset

    if not len(sequences):
        return np.zeros(0, dtype=np.float64)
    batched = dataclasses.replace(config, batch_size=sequence_batch_size(config))
    logits = [
        np.asarray(model(x, training=False)).reshape(-1)
        for x, _ in sequence_dataset(sequences, batched, training=False)
    ]
    return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))


def temporal_by_video(sequences: Sequences, probabilities: np.ndarray) -> dict[str, float]:
    """``{video: temporal score}``: per track the mean of its windows, then the highest track."""
    per_track: dict[tuple[str, int], list[float]] = {}
    for video, track, p in zip(sequences.videos, sequences.tracks, probabilities, strict=True):
        per_track.setdefault((video, track), []).append(float(p))
    scores: dict[str, float] = {}
    for (video, _), values in per_track.items():
        scores[video] = max(scores.get(video, 0.0), float(np.mean(values)))
    return scores


def video_table(crops, frame_probs, sequences: Sequences, seq_probs, aggregate: str) -> dict:
    """Per video (all of the split's, in ``by_video``'s order): labels and the three scores."""
    ids, labels, frame_scores, _ = by_video(crops, frame_probs, aggregate)
    temporal = temporal_by_video(sequences, seq_probs)
    temporal_scores = np.array([temporal.get(v, NO_FACE_SCORE) for v in ids], dtype=np.float64)
    combined = np.array(
        [combine(float(f), temporal.get(v)) for v, f in zip(ids, frame_scores, strict=True)], dtype=np.float64
    )
    return {
        "videos": ids,
        "labels": labels,
        "frame": frame_scores,
        "temporal": temporal_scores,
        "combined": combined,
        "with_sequence": int(sum(v in temporal for v in ids)),
    }


def choose_thresholds(table: dict, metric: str) -> dict[str, float]:
    """Thresholds of the temporal and the combined score, chosen on validation like the frame one."""
    return {name: choose_threshold(table["labels"], table[name], metric) for name in ("temporal", "combined")}


def side_by_side(table: dict, thresholds: dict[str, float]) -> dict:
    """Frame-only, temporal and combined video-level metrics (AUC, log loss, accuracy, ...)."""
    out = {"videos": len(table["videos"]), "videos_with_sequence": table["with_sequence"]}
    for name in ("frame", "temporal", "combined"):
        metrics = compute_metrics(table["labels"], table[name], thresholds[name])
        out[name] = {k: metrics[k] for k in REPORTED}
    return out


def plot_side_by_side(table: dict, path: pathlib.Path, title: str) -> pathlib.Path:
    """Both ROC curves (and the combined one) in one figure."""
    from training.plots import plot_roc

    curves = {
        "frame-only": (table["labels"], table["frame"]),
        "temporal": (table["labels"], table["temporal"]),
        "combined (max)": (table["labels"], table["combined"]),
    }
    return plot_roc(curves, path, title)


def split_table(
    run_dir: pathlib.Path, data_dir: pathlib.Path, split: str, *, crops=None, frame_probs=None
) -> dict:
    """:func:`video_table` of the run's frame and temporal models on ``split`` of ``data_dir``."""
    from training.config import config_from_dict
    from training.data import load_crops
    from training.evaluate import RUN_INFO, load_keras_model, load_run_model, predict_crops, read_run_info
    from training.temporal import TEMPORAL_MODEL
    from training.temporal_data import load_sequences

    info = read_run_info(run_dir)
    config = config_from_dict(info["config"], str(run_dir / RUN_INFO))
    size = int(info["input_size"])
    if crops is None or frame_probs is None:
        crops = load_crops(data_dir, split)
        if not len(crops):
            raise InvalidInputError(f"{data_dir}: the {split} split has no crops")
        frame_probs = predict_crops(load_run_model(run_dir), crops, config, size)
    sequences = load_sequences(data_dir, split, int(info["temporal"]["sequence_length"]), size)
    model = load_keras_model(run_dir / TEMPORAL_MODEL, "the temporal model")
    seq_probs = predict_sequences(model, sequences, config)
    return video_table(crops, frame_probs, sequences, seq_probs, config.aggregate)


def evaluate_temporal(
    run_dir: str | pathlib.Path,
    data_dir: str | pathlib.Path | None = None,
    *,
    split: str = "test",
    plots: bool = True,
    out_dir: str | pathlib.Path | None = None,
    crops=None,
    frame_probs: np.ndarray | None = None,
) -> dict:
    """Frame-only vs temporal video metrics of a run with a temporal model on ``split``.

    ``crops`` and ``frame_probs`` (the split's crops and the frame model's scores) save predicting
    them again when the caller has them (``training.evaluate.evaluate_run``).

    Returns the report, also written to ``<out_dir>/eval_temporal_<split>.json`` (default
    ``out_dir``: the run folder), the figure to ``roc_temporal_<split>.png`` beside it.

    Raises:
        InvalidInputError: the run has no temporal model, or the split has no crops.
    """
    from training.evaluate import read_run_info
    from training.temporal import TEMPORAL_MODEL

    run_dir = pathlib.Path(run_dir)
    out = pathlib.Path(out_dir or run_dir)
    info = read_run_info(run_dir)
    temporal = info.get("temporal")
    if not temporal or not (run_dir / TEMPORAL_MODEL).is_file():
        raise InvalidInputError(
            f"{run_dir}: the run has no temporal model (train a preset with temporal: true)"
        )
    data_dir = pathlib.Path(data_dir or info["dataset"]["path"])
    table = split_table(run_dir, data_dir, split, crops=crops, frame_probs=frame_probs)
    thresholds = {"frame": float(info["threshold"]), **temporal["thresholds"]}
    result = {"run": str(run_dir), "data": str(data_dir), "split": split, **side_by_side(table, thresholds)}
    if plots:
        name = f"roc_temporal_{split}.png"
        plot_side_by_side(table, out / name, f"{split}: frame-only vs temporal (video level)")
        result["plots"] = [name]
    (out / f"eval_temporal_{split}.json").write_text(json.dumps(result, indent=2))
    return result


def format_side_by_side(report: dict) -> str:
    """A few lines for people: one per score, AUC, log loss and accuracy."""
    lines = [f"{report['videos']} videos, {report['videos_with_sequence']} with a track of >= 4 crops"]
    for name in ("frame", "temporal", "combined"):
        m = report[name]
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.3f}"
        lines.append(f"  {name:<9} AUC {auc}  log loss {m['log_loss']:.3f}  accuracy {m['accuracy']:.3f}")
    return "\n".join(lines)
