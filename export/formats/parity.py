"""Parity of an edge export with the SavedModel it was converted from, on the run's golden batch.

The report, written as ``parity.json`` beside the file and printed by ``deepfake-export``: the
largest absolute difference in ``fake_probability``, the share of crops labelled alike at the
version's threshold, file sizes, and latency per crop on this CPU (the edge runtime and the
SavedModel in TensorFlow, the same batch, median of a few runs). Goals: float formats within
``FLOAT_TOLERANCE``, quantized ones within ``QUANTIZED_TOLERANCE`` with at least
``MIN_AGREEMENT`` of the labels alike.
"""

from __future__ import annotations

import pathlib
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from deepfake_client import contract
from deepfake_client.transport.local import EdgeModel
from export.metadata import GOLDEN_TOLERANCE

FLOAT_TOLERANCE = GOLDEN_TOLERANCE  # 1e-4, as a served version against Keras
QUANTIZED_TOLERANCE = 0.02
MIN_AGREEMENT = 0.99
LATENCY_BATCH = 32
LATENCY_RUNS = 5


def tree_bytes(path: pathlib.Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def per_crop_ms(run: Callable[[np.ndarray], Any], images: np.ndarray, runs: int = LATENCY_RUNS) -> float:
    """Median milliseconds per crop of ``run`` on ``images`` (after one untimed warm-up run)."""
    run(images)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run(images)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times) / len(images)


def saved_model_runner(saved_model: pathlib.Path) -> Callable[[np.ndarray], np.ndarray]:
    """``serving_default`` of a SavedModel, loaded by TensorFlow: uint8 crops -> fake probabilities."""
    import tensorflow as tf

    function = tf.saved_model.load(str(saved_model)).signatures[contract.DEFAULT_SIGNATURE]
    return lambda images: function(**{contract.IMAGES_INPUT: tf.constant(images)})[
        contract.PROBABILITY_OUTPUT
    ].numpy()


def check_parity(
    model_file: pathlib.Path,
    saved_model: pathlib.Path,
    images: np.ndarray,
    *,
    threshold: float,
    quantized: bool,
    sources: dict[str, int] | None = None,
) -> dict[str, Any]:
    """Compare ``model_file`` (with its ``model.json``) with ``saved_model`` on ``images``; the report."""
    edge = EdgeModel(model_file)
    reference = saved_model_runner(saved_model)
    expected = reference(images).astype(np.float64)
    got = edge(images)[contract.PROBABILITY_OUTPUT].astype(np.float64)
    diff = float(np.max(np.abs(got - expected))) if len(images) else 0.0
    agreement = float(np.mean((got >= threshold) == (expected >= threshold))) if len(images) else 1.0
    tolerance = QUANTIZED_TOLERANCE if quantized else FLOAT_TOLERANCE
    batch = images[np.arange(LATENCY_BATCH) % len(images)]
    edge_ms = per_crop_ms(edge, batch)
    saved_ms = per_crop_ms(reference, batch)
    return {
        "file": model_file.name,
        "runtime": edge.runtime,
        "crops": int(len(images)),
        "sources": sources or {"golden": int(len(images))},
        "threshold": threshold,
        "max_abs_diff": diff,
        "label_agreement": agreement,
        "tolerance": tolerance,
        "min_agreement": MIN_AGREEMENT,
        "passed": bool(diff <= tolerance and agreement >= MIN_AGREEMENT),
        "size_bytes": tree_bytes(model_file),
        "saved_model_bytes": tree_bytes(saved_model),
        "latency_ms_per_crop": round(edge_ms, 4),
        "saved_model_latency_ms_per_crop": round(saved_ms, 4),
        "latency_batch": LATENCY_BATCH,
    }


def format_report(report: dict[str, Any]) -> str:
    """The report in three lines for people."""
    verdict = "passed" if report["passed"] else "FAILED"
    return (
        f"  parity {verdict} on {report['crops']} crops: max |p - p_savedmodel| = "
        f"{report['max_abs_diff']:.2e} (goal <= {report['tolerance']:.0e}), labels alike "
        f"{100 * report['label_agreement']:.1f} % (goal >= {100 * report['min_agreement']:.0f} %)\n"
        f"  size {report['size_bytes'] / 1e6:.3f} MB "
        f"(SavedModel {report['saved_model_bytes'] / 1e6:.3f} MB)\n"
        f"  latency per crop {report['latency_ms_per_crop']:.3f} ms with {report['runtime']} "
        f"(SavedModel in TensorFlow {report['saved_model_latency_ms_per_crop']:.3f} ms), "
        f"batch {report['latency_batch']}"
    )
