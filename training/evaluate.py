"""Evaluation of a trained run: frame-level and video-level metrics, a JSON report and plots.

Video scores are aggregated from face scores the way the client does (``deepfake_client.verdict``),
so the threshold chosen on validation is the one the served version applies.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

from deepfake_client.errors import InvalidInputError, NotFoundError
from training.config import TrainConfig, config_from_dict
from training.data import Crops, load_crops, make_dataset
from training.metrics import NO_FACE_SCORE, PROTOCOLS, auc_by_source, by_video, compute_metrics

RUN_INFO = "run.json"
RUN_MODEL = "model.keras"


def predict_crops(model, crops: Crops, config: TrainConfig, size: int) -> np.ndarray:
    """Fake probabilities of every crop (in order)."""
    if not len(crops):
        return np.zeros(0, dtype=np.float64)
    return predict_batches(model, make_dataset(crops, config, size=size, training=False))


def predict_batches(model, ds) -> np.ndarray:
    """Fake probabilities of every image of the batched ``(images, labels)`` dataset ``ds`` (in order)."""
    logits = [np.asarray(model(x, training=False)).reshape(-1) for x, _ in ds]
    if not logits:
        return np.zeros(0, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-np.concatenate(logits).astype(np.float64)))


def split_report(crops: Crops, probabilities: np.ndarray, *, threshold: float, aggregate: str) -> dict:
    """Frame-level and video-level metrics of one split at ``threshold``, the protocol, AUC per source."""
    _, video_labels, video_scores, video_sources = by_video(crops, probabilities, aggregate)
    frame_sources = crops.sources or [""] * len(crops)
    return {
        "frame": compute_metrics(crops.labels, probabilities, threshold),
        "video": {
            **compute_metrics(video_labels, video_scores, threshold),
            "aggregate": aggregate,
            "no_face": len(crops.empty),
        },
        "protocol": {
            "frame": "every face crop scored on its own",
            "video": PROTOCOLS[aggregate],
            "no_face": f"videos with no face (or unreadable) scored {NO_FACE_SCORE} and counted",
        },
        "by_source": auc_by_source(
            (crops.labels, probabilities, frame_sources), (video_labels, video_scores, video_sources)
        ),
        "_curves": {"frame": (crops.labels, probabilities), "video": (video_labels, video_scores)},
    }


def write_plots(run_dir: pathlib.Path, split: str, report: dict) -> list[str]:
    """ROC curve and video-level confusion matrix of ``split`` as PNG files in ``run_dir``."""
    from training.plots import plot_confusion, plot_roc

    roc = plot_roc(report["_curves"], run_dir / f"roc_{split}.png", f"ROC, {split} split")
    confusion = plot_confusion(
        report["video"]["confusion"],
        run_dir / f"confusion_{split}.png",
        f"{split}, video level, t={report['video']['threshold']:.2f}",
    )
    return [roc.name, confusion.name]


def public(report: dict) -> dict:
    """``report`` without its raw curves (JSON-ready)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def read_run_info(run_dir: str | pathlib.Path) -> dict:
    """``run.json`` of a finished run, or a one-line error naming what is missing."""
    path = pathlib.Path(run_dir) / RUN_INFO
    if not pathlib.Path(run_dir).is_dir():
        raise NotFoundError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise NotFoundError(f"{path}: missing (did training finish?)")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InvalidInputError(f"{path}: not valid JSON ({err})") from err


def load_run_model(run_dir: str | pathlib.Path):  # type: ignore[no-untyped-def]
    """The Keras model of a run (``model.keras``, uncompiled).

    Raises:
        NotFoundError: the run has no model file.
        InvalidInputError: Keras cannot load it.
    """
    path = pathlib.Path(run_dir) / RUN_MODEL
    if not path.is_file():
        raise NotFoundError(f"{run_dir}: the run has no {RUN_MODEL} (did training finish?)")
    import keras

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a bad file
        raise InvalidInputError(f"{path}: cannot load the Keras model ({err})") from err


def evaluate_run(
    run_dir: str | pathlib.Path,
    data_dir: str | pathlib.Path | None = None,
    *,
    split: str = "test",
    threshold: float | None = None,
    aggregate: str | None = None,
    plots: bool = True,
) -> dict:
    """Evaluate the finished run ``run_dir`` on ``split`` of a prepared crops folder.

    Args:
        run_dir: the run folder (``model.keras`` + ``run.json``).
        data_dir: the crops folder; default: the one the run was trained on.
        split: ``train``, ``val`` or ``test``.
        threshold: the decision threshold; default: the run's (chosen on validation).
        aggregate: how face scores make a video score (``confident``, ``mean``, ``max``); default:
            the run's. The report records the protocol.
        plots: write ``roc_<split>.png`` and ``confusion_<split>.png`` into the run folder.

    Returns:
        The report, also written to ``<run_dir>/eval_<split>.json``.
    """

    run_dir = pathlib.Path(run_dir)
    info = read_run_info(run_dir)
    if split not in ("train", "val", "test"):
        raise InvalidInputError(f"unknown split {split!r} (known: train, val, test)")
    config = config_from_dict(info["config"], str(run_dir / RUN_INFO))
    data_dir = pathlib.Path(data_dir or info["dataset"]["path"])
    crops = load_crops(data_dir, split)
    if not len(crops):
        raise InvalidInputError(f"{data_dir}: the {split} split has no crops")
    model = load_run_model(run_dir)
    threshold = info["threshold"] if threshold is None else threshold
    probabilities = predict_crops(model, crops, config, info["input_size"])
    aggregate = aggregate or config.aggregate
    if aggregate not in PROTOCOLS:
        raise InvalidInputError(f"unknown aggregation {aggregate!r} (known: {', '.join(PROTOCOLS)})")
    report = split_report(crops, probabilities, threshold=threshold, aggregate=aggregate)
    result = {
        "run": str(run_dir),
        "data": str(data_dir),
        "split": split,
        "backbone": info["backbone"],
        "input_size": info["input_size"],
        **public(report),
    }
    if plots:
        result["plots"] = write_plots(run_dir, split, report)
    (run_dir / f"eval_{split}.json").write_text(json.dumps(result, indent=2))
    return result
