"""PNG plots of a run with matplotlib's Agg backend: ROC and precision-recall curves, confusion
matrices, reliability diagrams, robustness curves, training curves."""

from __future__ import annotations

import csv
import pathlib

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_roc(
    curves: dict[str, tuple[np.ndarray, np.ndarray]], path: pathlib.Path, title: str
) -> pathlib.Path:
    """ROC curves ``{name: (labels, scores)}`` on one figure."""
    from sklearn.metrics import roc_auc_score, roc_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        fpr, tpr, _ = roc_curve(labels, scores)
        ax.plot(fpr, tpr, label=f"{name} (AUC {roc_auc_score(labels, scores):.3f})")
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8)
    ax.set(
        xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01)
    )
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion(confusion: dict[str, int], path: pathlib.Path, title: str) -> pathlib.Path:
    """A 2x2 confusion matrix (rows: truth REAL/FAKE, columns: predicted)."""
    plt = _pyplot()
    matrix = np.array([[confusion["tn"], confusion["fp"]], [confusion["fn"], confusion["tp"]]])
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(
            j, i, str(value), ha="center", va="center", color="white" if value > matrix.max() / 2 else "black"
        )
    ax.set(
        xticks=[0, 1],
        yticks=[0, 1],
        xticklabels=["REAL", "FAKE"],
        yticklabels=["REAL", "FAKE"],
        xlabel="predicted",
        ylabel="truth",
        title=title,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_history(
    history_csv: pathlib.Path, path: pathlib.Path, chosen_epoch: int | None = None
) -> pathlib.Path | None:
    """Loss and AUC per epoch from Keras' CSV log (train and validation), the kept epoch marked."""
    if not history_csv.is_file():
        return None
    with history_csv.open() as handle:
        rows = list(csv.DictReader(handle))
    if not rows:
        return None
    plt = _pyplot()
    epochs = [int(r["epoch"]) + 1 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, metric in zip(axes, ("loss", "auc"), strict=True):
        for prefix, style in (("", "-"), ("val_", "--")):
            key = prefix + metric
            if key in rows[0]:
                ax.plot(epochs, [float(r[key]) for r in rows], style, label=key)
        if chosen_epoch is not None:
            ax.axvline(chosen_epoch, color="tab:red", linewidth=0.8, label=f"kept: epoch {chosen_epoch}")
        ax.set(xlabel="epoch", title=metric)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_pr(curves: dict[str, tuple[np.ndarray, np.ndarray]], path: pathlib.Path, title: str) -> pathlib.Path:
    """Precision-recall curves ``{name: (labels, scores)}`` of the fake class, with average precision."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in curves.items():
        if len(np.unique(labels)) < 2:
            continue
        precision, recall, _ = precision_recall_curve(labels, scores)
        ap = average_precision_score(labels, scores)
        ax.step(recall, precision, where="post", label=f"{name} (AP {ap:.3f})")
        ax.axhline(float(np.mean(labels)), color="gray", linewidth=0.6, linestyle=":")
    ax.set(xlabel="recall (fake)", ylabel="precision (fake)", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_calibration(
    curve: tuple[np.ndarray, np.ndarray], path: pathlib.Path, title: str, bins: int = 10
) -> pathlib.Path:
    """Reliability diagram of ``(labels, scores)``: fraction of fakes per score bin, with the score
    histogram below; log loss and expected calibration error in the legend."""
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import log_loss

    from training.research import expected_calibration_error

    labels, scores = np.asarray(curve[0]), np.asarray(curve[1], dtype=np.float64)
    plt = _pyplot()
    fig, (ax, hist) = plt.subplots(2, 1, figsize=(5, 6), gridspec_kw={"height_ratios": [3, 1]}, sharex=True)
    ax.plot([0, 1], [0, 1], "k--", linewidth=0.8, label="perfectly calibrated")
    if len(labels):
        fraction, mean = calibration_curve(labels, scores, n_bins=bins, strategy="uniform")
        loss = log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1])
        ece = expected_calibration_error(labels, scores, bins)
        ax.plot(mean, fraction, "o-", label=f"model (log loss {loss:.3f}, ECE {ece:.3f})")
        hist.hist(scores, bins=bins, range=(0, 1), color="tab:blue", alpha=0.7)
    ax.set(ylabel="fraction of fakes", title=title, xlim=(0, 1), ylim=(0, 1.01))
    ax.legend(loc="upper left")
    hist.set(xlabel="predicted fake probability", ylabel="videos")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_robustness(curves: dict[str, dict], path: pathlib.Path, title: str) -> pathlib.Path:
    """One panel per perturbation: video and frame AUC against its level (``training.robustness``)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(curves), figsize=(3.6 * len(curves), 3.4), squeeze=False)
    for ax, (kind, curve) in zip(axes[0], curves.items(), strict=True):
        levels = [row["level"] for row in curve["levels"]]
        for key, style in (("video_auc", "o-"), ("frame_auc", "s--")):
            values = [np.nan if row[key] is None else row[key] for row in curve["levels"]]
            ax.plot(range(len(levels)), values, style, label=key.replace("_", " "))
        ax.set_xticks(range(len(levels)), [f"{level:g}" for level in levels])
        ax.set(xlabel=curve["meaning"], ylabel="ROC-AUC", title=kind, ylim=(0, 1.02))
        ax.xaxis.label.set_size(8)
        ax.axhline(0.5, color="gray", linewidth=0.6, linestyle=":")
        ax.legend(loc="lower left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
