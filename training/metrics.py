"""Detection metrics: accuracy, precision, recall, F1, ROC-AUC, log loss, EER; threshold choice;
frame scores aggregated to video scores with the client's rules; AUC per fake source (FF++ method)."""

from __future__ import annotations

import numpy as np

NO_FACE_SCORE = 0.5  # a video with no face found (or unreadable) is scored 0.5 and counted, as SBI does
PROTOCOLS = {
    "confident": "the DFDC winner's confident rule over all faces of the video",
    "mean": "the mean over frames of each frame's highest face score (SBI, DeepfakeBench)",
    "max": "the highest face score of the video",
}
CLASSIC_FFPP = ("Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures")


def video_score(probabilities: np.ndarray, frames: list[int] | None, method: str) -> float:
    """One video's score from its face probabilities with the client's ``aggregate``.

    ``mean`` first takes each frame's highest face score (``frames`` gives each face's frame), then
    the mean of those; ``confident`` and ``max`` use every face.
    """
    from deepfake_client.verdict import aggregate

    probabilities = np.asarray(probabilities, dtype=np.float64)
    if method == "mean" and frames is not None:
        per_frame: dict[int, float] = {}
        for frame, p in zip(frames, probabilities, strict=True):
            per_frame[frame] = max(per_frame.get(frame, 0.0), float(p))
        probabilities = np.array(list(per_frame.values()))
    return float(aggregate(probabilities, method=method))


def by_video(crops, probabilities: np.ndarray, method: str):
    """``(video ids, labels, scores, sources)``, one score per video (first-seen order), then the
    videos without a face (``crops.empty``) at :data:`NO_FACE_SCORE`."""
    order: dict[str, list[int]] = {}
    for i, video in enumerate(crops.videos):
        order.setdefault(video, []).append(i)
    frames, sources = crops.frames, crops.sources
    ids = list(order) + [video for video, _, _ in crops.empty]
    labels = [int(crops.labels[idx[0]]) for idx in order.values()] + [label for _, label, _ in crops.empty]
    scores = [
        video_score(probabilities[idx], None if frames is None else [frames[i] for i in idx], method)
        for idx in order.values()
    ] + [NO_FACE_SCORE] * len(crops.empty)
    video_sources = [sources[idx[0]] if sources else "" for idx in order.values()]
    video_sources += [source for _, _, source in crops.empty]
    return ids, np.array(labels, dtype=np.int64), np.array(scores, dtype=np.float64), video_sources


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else None


def auc_by_source(
    frame: tuple[np.ndarray, np.ndarray, list[str]], video: tuple[np.ndarray, np.ndarray, list[str]]
) -> dict[str, dict]:
    """Frame and video ROC-AUC of each fake source (an FF++ method ...) against all real items.

    Empty when the fakes come from fewer than two sources. With FF++'s four classic methods
    present, ``classic_mean`` holds the mean of their AUCs (the number papers report).
    """
    fake_sources = sorted({s for y, s in zip(video[0], video[2], strict=True) if y == 1})
    if len(fake_sources) < 2:
        return {}
    result: dict[str, dict] = {}
    for source in fake_sources:
        entry = {}
        for level, (labels, scores, sources) in (("frame", frame), ("video", video)):
            keep = np.array([y == 0 or s == source for y, s in zip(labels, sources, strict=True)], dtype=bool)
            entry[f"{level}_auc"] = (
                _auc(np.asarray(labels)[keep], np.asarray(scores)[keep]) if keep.any() else None
            )
            entry[f"{level}_fakes"] = int(np.sum(keep & (np.asarray(labels) == 1)))
        result[source] = entry
    if set(CLASSIC_FFPP) <= set(result):
        result["classic_mean"] = {
            f"{level}_auc": float(np.mean([result[m][f"{level}_auc"] or 0.0 for m in CLASSIC_FFPP]))
            for level in ("frame", "video")
        }
    return result


def equal_error_rate(labels: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
    """``(EER, threshold)``: where the false positive rate equals the false negative rate."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    fnr = 1.0 - tpr
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    return float((fpr[i] + fnr[i]) / 2.0), float(min(1.0, thresholds[i]))


def choose_threshold(labels: np.ndarray, scores: np.ndarray, metric: str = "youden") -> float:
    """The decision threshold on probabilities that maximises ``metric`` on these (validation) scores.

    ``youden``: TPR - FPR (balanced accuracy); ``f1``: F1 of the fake class; ``eer``: the EER point;
    ``calibrated``: 0.5 unless validation shows a clearly better one (see :func:`_calibrated_threshold`).
    With a single class present, 0.5.
    """
    labels = np.asarray(labels)
    if len(np.unique(labels)) < 2:
        return 0.5
    if metric == "eer":
        return equal_error_rate(labels, scores)[1]
    if metric == "calibrated":
        return _calibrated_threshold(labels, np.asarray(scores, dtype=np.float64))
    # Predictions change only at the scores: t in (s[k-1], s[k]] acts like s[k]. Score every s[k],
    # then return the middle of the first best run of them, not its edge (a margin on both sides).
    candidates = np.unique(scores)
    values = []
    for t in candidates:
        pred = scores >= t
        tp = float(np.sum(pred & (labels == 1)))
        fp = float(np.sum(pred & (labels == 0)))
        fn = float(np.sum(~pred & (labels == 1)))
        if metric == "f1":
            values.append(2 * tp / max(1.0, 2 * tp + fp + fn))
        else:
            values.append(tp / max(1.0, tp + fn) - fp / max(1.0, float(np.sum(labels == 0))))
    values = np.asarray(values)
    best = np.flatnonzero(values >= values.max() - 1e-12)
    first = last = int(best[0])
    while last + 1 < len(candidates) and values[last + 1] >= values.max() - 1e-12:
        last += 1
    low = candidates[first - 1] if first > 0 else 0.0
    return float((low + candidates[last]) / 2.0)


def _youden(labels: np.ndarray, scores: np.ndarray, threshold: float) -> float:
    pred = scores >= threshold
    tpr = float(np.sum(pred & (labels == 1))) / max(1.0, float(np.sum(labels == 1)))
    fpr = float(np.sum(pred & (labels == 0))) / max(1.0, float(np.sum(labels == 0)))
    return tpr - fpr


def _calibrated_threshold(labels: np.ndarray, scores: np.ndarray) -> float:
    """0.5, the decision point of a model trained on log loss, unless validation disagrees clearly.

    A handful of validation videos cannot place a threshold: with perfectly separated scores any
    point of the gap is "best", and the middle of it moves with every run. So 0.5 is kept while
    its Youden's J is within one video of the best J (``1 / videos of the smaller class``).
    Otherwise the threshold moves into the run of acceptable thresholds nearest 0.5: to the
    point of it nearest 0.5, but at least a quarter of the run's width inside its edges.
    """
    tolerance = 1.0 / float(min(np.sum(labels == 0), np.sum(labels == 1))) + 1e-9
    candidates = np.unique(scores)
    # Thresholds in (candidates[k-1], candidates[k]] act alike; above the top score all are real.
    edges = np.concatenate([[0.0], candidates, [max(1.0, float(candidates[-1]))]])
    values = np.array([_youden(labels, scores, float(t)) for t in candidates] + [0.0])
    accepted = values >= values.max() - tolerance
    runs, k = [], 0
    while k < len(values):
        if not accepted[k]:
            k += 1
            continue
        start = k
        while k + 1 < len(values) and accepted[k + 1]:
            k += 1
        runs.append((float(edges[start]), float(edges[k + 1])))
        k += 1
    for low, high in runs:
        if low < 0.5 <= high:
            return 0.5
    low, high = min(runs, key=lambda r: min(abs(r[0] - 0.5), abs(r[1] - 0.5)))
    margin = (high - low) / 4.0
    return float(np.clip(0.5, low + margin, high - margin))


def compute_metrics(
    labels: np.ndarray, scores: np.ndarray, threshold: float
) -> dict[str, float | int | None]:
    """Accuracy, precision, recall, F1 (fake = positive) at ``threshold``; ROC-AUC, log loss, EER."""
    from sklearn.metrics import log_loss, roc_auc_score

    labels = np.asarray(labels, dtype=np.int64)
    scores = np.asarray(scores, dtype=np.float64)
    pred = scores >= threshold
    tp = int(np.sum(pred & (labels == 1)))
    tn = int(np.sum(~pred & (labels == 0)))
    fp = int(np.sum(pred & (labels == 0)))
    fn = int(np.sum(~pred & (labels == 1)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    both = len(np.unique(labels)) == 2
    return {
        "count": int(len(labels)),
        "real": int(np.sum(labels == 0)),
        "fake": int(np.sum(labels == 1)),
        "threshold": float(threshold),
        "accuracy": (tp + tn) / max(1, len(labels)),
        "balanced_accuracy": ((tp / (tp + fn) if tp + fn else 0.0) + (tn / (tn + fp) if tn + fp else 0.0))
        / 2.0,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "roc_auc": float(roc_auc_score(labels, scores)) if both else None,
        "log_loss": float(log_loss(labels, np.clip(scores, 1e-7, 1 - 1e-7), labels=[0, 1]))
        if len(labels)
        else None,
        "eer": equal_error_rate(labels, scores)[0] if both else None,
        "confusion": {"tn": tn, "fp": fp, "fn": fn, "tp": tp},
    }
