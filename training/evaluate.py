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
    return load_keras_model(path, "the Keras model")


def load_keras_model(path: pathlib.Path, what: str):  # type: ignore[no-untyped-def]
    """A ``.keras`` file of this project, uncompiled, with its custom layers registered.

    Raises:
        InvalidInputError: Keras cannot load it (``what`` names it in the message).
    """
    import keras

    from training import frequency, vit  # noqa: F401  register their layers (Spectrum, ViT's tokens)

    try:
        return keras.models.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a bad file
        raise InvalidInputError(f"{path}: cannot load {what} ({err})") from err


def eval_folder(run_dir: pathlib.Path, name: str, *, overwrite: bool) -> pathlib.Path:
    """``RUN/eval/<name>/`` (not created yet); an existing non-empty one only with ``overwrite``."""
    if not name or any(c in name for c in "/\\") or name in (".", ".."):
        raise InvalidInputError(f"evaluation name {name!r}: expected a plain folder name")
    folder = run_dir / "eval" / name
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise InvalidInputError(
            f"{folder} holds an earlier evaluation: choose another --name, or --overwrite to replace it"
        )
    return folder


def _set_name(name: str) -> str:
    """A test set's name as it appears in file names (letters, digits, ``-``, ``_``, ``.``)."""
    clean = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")
    if not clean:
        raise InvalidInputError(f"test set name {name!r}: needs a letter or a digit")
    return clean


def _load_split(data_dir: pathlib.Path, split: str, margin: float | None, label: str) -> Crops:
    from training.prepare import read_info

    info = read_info(data_dir)
    if margin is not None and abs(float(info.get("crop_margin", margin)) - margin) > 1e-6:
        import logging

        logging.getLogger(__name__).warning(
            "%s: crops prepared with margin %s, the model was trained on %s: scores are not comparable",
            label,
            info.get("crop_margin"),
            margin,
        )
    crops = load_crops(data_dir, split)
    if not len(crops):
        raise InvalidInputError(f"{data_dir}: the {split} split has no crops ({label})")
    return crops


def evaluate_run(
    run_dir: str | pathlib.Path,
    data_dir: str | pathlib.Path | None = None,
    *,
    split: str = "test",
    threshold: float | None = None,
    aggregate: str | None = None,
    plots: bool = True,
    name: str | None = None,
    test_data: dict[str, str | pathlib.Path] | None = None,
    robustness: list[str] | None = None,
    overwrite: bool = False,
) -> dict:
    """Evaluate the finished run ``run_dir`` on ``split`` of a prepared crops folder (and others).

    Args:
        run_dir: the run folder (``model.keras`` + ``run.json``).
        data_dir: the crops folder; default: the one the run was trained on.
        split: ``train``, ``val`` or ``test`` (of every crops folder).
        threshold: the decision threshold; default: the run's (chosen on validation).
        aggregate: how face scores make a video score (``confident``, ``mean``, ``max``); default:
            the run's. The report records the protocol.
        plots: write PNG plots (ROC, confusion, precision-recall, calibration, robustness,
            training curves with the kept epoch marked).
        name: the evaluation's folder ``RUN/eval/<name>/``; default: ``split``.
        test_data: other prepared sets ``{name: crops folder}`` for the cross-dataset table (the
            run's model on each set's ``split``); the table's first row is ``data_dir``.
        robustness: perturbations (``training.robustness.PERTURBATIONS``) for robustness curves
            on ``data_dir``'s split; None or empty: none.
        overwrite: replace an earlier evaluation of the same ``name``.

    Returns:
        The report, written to ``RUN/eval/<name>/report.json`` (and, as before, the main set's
        part to ``RUN/eval_<split>.json``). The training run's own files are never touched.
    """
    from training import research

    run_dir = pathlib.Path(run_dir)
    info = read_run_info(run_dir)
    if split not in ("train", "val", "test"):
        raise InvalidInputError(f"unknown split {split!r} (known: train, val, test)")
    config = config_from_dict(info["config"], str(run_dir / RUN_INFO))
    aggregate = aggregate or config.aggregate
    if aggregate not in PROTOCOLS:
        raise InvalidInputError(f"unknown aggregation {aggregate!r} (known: {', '.join(PROTOCOLS)})")
    data_dir = pathlib.Path(data_dir or info["dataset"]["path"])
    folder = eval_folder(run_dir, name or split, overwrite=overwrite)
    margin = info.get("crop_margin")
    main_name = _set_name(data_dir.resolve().name)
    sets = {main_name: _load_split(data_dir, split, None, "--data")}
    for set_name, set_dir in (test_data or {}).items():
        key = _set_name(set_name)
        if key in sets:
            raise InvalidInputError(
                f"test set name {set_name!r} is used twice (the main set is {main_name!r})"
            )
        sets[key] = _load_split(pathlib.Path(set_dir), split, margin, set_name)
    model = load_run_model(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    threshold = info["threshold"] if threshold is None else threshold

    reports, table, files = {}, {}, []
    for key, crops in sets.items():
        probabilities = predict_crops(model, crops, config, info["input_size"])
        reports[key] = (
            probabilities,
            split_report(crops, probabilities, threshold=threshold, aggregate=aggregate),
        )
        table[key] = research.publication_metrics(reports[key][1])
        rows = research.video_predictions(crops, probabilities, aggregate=aggregate, threshold=threshold)
        files.append(research.write_csv(rows, folder / f"predictions_{key}.csv").name)
        if plots:
            files += research.write_set_plots(folder, key, reports[key][1])
    probabilities, report = reports[main_name]
    result = {
        "run": str(run_dir),
        "data": str(data_dir),
        "split": split,
        "backbone": info["backbone"],
        "input_size": info["input_size"],
        **public(report),
        **{k: table[main_name][k] for k in ("average_precision", "ece")},
        "eval_dir": str(folder),
    }
    if test_data:
        result["cross_dataset"] = table
        result["cross_dataset_protocol"] = (
            f"the model of {run_dir} (trained on {info['dataset'].get('name')} at {info['dataset']['path']}) "
            f"on the {split} split of each set, threshold {threshold:.3f}, videos by {PROTOCOLS[aggregate]}"
        )
        files += research.write_table(table, folder)
    if robustness:
        from training.robustness import robustness_curves

        curves = robustness_curves(
            model,
            sets[main_name],
            config,
            size=info["input_size"],
            aggregate=aggregate,
            kinds=robustness,
            clean=probabilities,
        )
        result["robustness"] = curves
        if plots:
            from training.plots import plot_robustness

            files.append(plot_robustness(curves, folder / "robustness.png", f"robustness, {main_name}").name)
    result["chosen_epoch"] = research.chosen_epoch(run_dir / "history.csv", config.monitor)
    if plots:
        from training.plots import plot_history

        history = plot_history(
            run_dir / "history.csv", folder / "training_curves.png", result["chosen_epoch"]
        )
        files += [history.name] if history else []
    if info.get("temporal"):  # a run with a temporal model: frame-only vs temporal, side by side
        from training.temporal_eval import evaluate_temporal

        result["temporal"] = evaluate_temporal(
            run_dir,
            data_dir,
            split=split,
            plots=plots,
            out_dir=folder,
            crops=sets[main_name],
            frame_probs=probabilities,
        )
        files += result["temporal"].get("plots", [])
    result["files"] = files
    result["plots"] = [f for f in files if f.endswith(".png")]
    (folder / "report.json").write_text(json.dumps(result, indent=2))
    (run_dir / f"eval_{split}.json").write_text(json.dumps(result, indent=2))
    return result
