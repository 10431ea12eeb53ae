"""Backbones and cues: what ViT-B/16 and the frequency branch cost against EfficientNet-B0.

Inference throughput (crops per second, batch 16, float32 on this machine's CPU, a traced
``tf.function`` as serving runs it; best of 3 interleaved rounds) of EfficientNet-B0 at 224 px
(the baseline, the default preset), with the DCT and FFT frequency branches added, and of
ViT-B/16; and the training step rate of the smoke preset's tiny CNN with and without the DCT
branch (best of 2). Reported, no goal: the price of each choice, measured on the same machine in
the same run.
"""

from __future__ import annotations

import os
import time


def _inference_rate(model, size: int, batches: int, batch: int = 16):
    """A function measuring crops/s of ``model`` once more each time it is called (traced, warm)."""
    import numpy as np
    import tensorflow as tf

    x = tf.constant(np.random.default_rng(0).integers(0, 256, (batch, size, size, 3), dtype=np.uint8))
    step = tf.function(lambda images: model(tf.cast(images, tf.float32), training=False))
    for _ in range(2):  # trace and warm up
        step(x).numpy()

    def measure() -> float:
        start = time.perf_counter()
        for _ in range(batches):
            step(x).numpy()
        return batches * batch / (time.perf_counter() - start)

    return measure


def _training_rate(config, steps: int) -> float:
    import numpy as np
    import tensorflow as tf

    from training.train import _compile

    size = config.resolved_input_size()
    model = _compile(config, size)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (config.batch_size, size, size, 3), dtype=np.uint8)
    y = rng.integers(0, 2, (config.batch_size, 1)).astype(np.float32)
    ds = tf.data.Dataset.from_tensors((x, y)).repeat()
    model.fit(ds, steps_per_epoch=2, epochs=1, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0)
    return steps * config.batch_size / (time.perf_counter() - start)


def run(quick: bool) -> list[dict]:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from training.config import load_config
    from training.models import build_model

    batches = 3 if quick else 8
    # On a shared machine, rounds interleave the models and each keeps its best round: a burst of
    # someone else's load then slows one round of every model, not all rounds of one.
    cases = {
        "efficientnet_b0@224": ("efficientnet_b0", None),
        "efficientnet_b0+dct@224": ("efficientnet_b0", "dct"),
        "efficientnet_b0+fft@224": ("efficientnet_b0", "fft"),
        "vit_b16@224": ("vit_b16", None),
    }
    meters = {
        label: _inference_rate(build_model(name, 224, None, frequency=frequency), 224, batches)
        for label, (name, frequency) in cases.items()
    }
    best = dict.fromkeys(meters, 0.0)
    for _ in range(1 if quick else 3):
        for label, measure in meters.items():
            best[label] = max(best[label], measure())
    base_name = "efficientnet_b0@224"
    rows = [
        {
            "name": f"inference {label} (crops/s)",
            "value": value,
            "unit": "crop/s",
            "baseline": best[base_name],
            "baseline_name": base_name,
            "goal": "report",
        }
        for label, value in best.items()
        if label != base_name
    ]
    steps = 10 if quick else 40
    plain = max(_training_rate(load_config("smoke"), steps) for _ in range(1 if quick else 2))
    with_dct = max(
        _training_rate(load_config("smoke", ["frequency=dct"]), steps) for _ in range(1 if quick else 2)
    )
    rows.append(
        {
            "name": "training smoke tiny+dct@64 (images/s)",
            "value": with_dct,
            "unit": "img/s",
            "baseline": plain,
            "baseline_name": "smoke tiny@64",
            "goal": "report",
        }
    )
    return rows
