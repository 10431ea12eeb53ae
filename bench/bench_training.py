"""Training input pipeline throughput against the model's own training step rate.

The ``tf.data`` pipeline (decode -> cache -> shuffle -> seeded augmentation -> batch -> prefetch)
must feed images faster than the model trains on them, or the accelerator waits: goal ratio
>= 1.5. Both are measured here, on the same machine and the same prepared crops: the pipeline
alone (iterating batches), the model alone (``fit`` on one batch kept in memory, so no input cost).
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time


def _crops(root: pathlib.Path, quick: bool) -> pathlib.Path:
    from training.prepare import prepare_dataset
    from training.synthetic import generate_dataset

    data = generate_dataset(root / "data", 6 if quick else 12, frames=6)
    out = root / "crops"
    prepare_dataset("folder", data, out, size=224, frames=6, workers=2, progress=False)
    return out


def _pipeline_rate(crops, config, size: int, batches: int) -> float:
    from training.data import make_dataset

    ds = make_dataset(crops, config, size=size, training=True, repeat=True)
    iterator = iter(ds)
    for _ in range(3):  # warm-up: fills the cache and the prefetch buffer
        next(iterator)
    start = time.perf_counter()
    images = 0
    for _ in range(batches):
        x, _ = next(iterator)
        images += int(x.shape[0])
    return images / (time.perf_counter() - start)


def _model_rate(config, size: int, steps: int) -> float:
    import numpy as np
    import tensorflow as tf

    from training.train import _compile

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
    from training.data import load_crops

    cases = [("smoke", [], 30 if quick else 60, 20 if quick else 40)]
    if not quick:
        cases.append(("efficientnet_b0", ["batch_size=16"], 20, 4))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        crops_dir = _crops(pathlib.Path(tmp), quick)
        crops = load_crops(crops_dir, "train")
        for preset, overrides, batches, steps in cases:
            config = load_config(preset, overrides)
            size = config.resolved_input_size()
            pipeline = _pipeline_rate(crops, config, size, batches)
            model = _model_rate(config, size, steps)
            rows.append(
                {
                    "name": f"input pipeline, {config.backbone}@{size} augmented (images/s)",
                    "value": pipeline,
                    "unit": "img/s",
                    "baseline": model,
                    "baseline_name": f"{config.backbone} train step",
                    "goal": "ratio >= 1.5 (the pipeline is not the bottleneck)",
                }
            )
    return rows
