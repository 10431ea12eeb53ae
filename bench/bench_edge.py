"""Edge formats vs the SavedModel, in-process on this CPU: latency per crop, size, score difference.

One model is exported once as a SavedModel (the contract's signatures) and converted by the
``export.formats`` modules: TFLite float32, float16 and int8 (LiteRT), ONNX (ONNX Runtime; the
``tfjs`` format is this file for onnxruntime-web). Each is timed on the same batch of 32 crops and
on single crops (median of 7 runs after a warm-up) against the SavedModel's ``serving_default`` in
TensorFlow, measured in the same run. int8 is calibrated on generated crops here (a benchmark has
no training run); ``deepfake-export`` calibrates on the run's own crops. Full run: EfficientNet-B0
at 224 (untrained weights: sizes and latency are the backbone's; score differences are reported,
but only a trained run's parity report says how a real model fares); ``--quick``: the tiny CNN at 64.
"""

from __future__ import annotations

import pathlib
import tempfile

import numpy as np
import orjson

from deepfake_client import contract
from deepfake_client.transport.local import FACTS_FILE, EdgeModel

VARIANTS = (("tflite", None), ("tflite", "float16"), ("tflite", "int8"), ("onnx", None))
RUNS = 7


def run(quick: bool) -> list[dict]:
    from export.formats import format_module
    from export.formats.parity import per_crop_ms, saved_model_runner, tree_bytes
    from export.metadata import golden_images
    from export.signatures import build_serving_module, save_serving_model
    from training.models import build_model

    name, size = ("tiny", 64) if quick else ("efficientnet_b0", 224)
    batch = golden_images(size, 32, seed=7)
    single = batch[:1]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-edge-") as tmp:
        root = pathlib.Path(tmp)
        module = build_serving_module(build_model(name, size), size, contract.DEFAULT_CROP_MARGIN, 0.5)
        saved = root / "saved_model"
        save_serving_model(module, saved)
        reference = saved_model_runner(saved)
        expected = reference(batch)
        saved_batch_ms = per_crop_ms(reference, batch, RUNS)
        saved_single_ms = per_crop_ms(reference, single, RUNS)
        saved_bytes = tree_bytes(saved / "variables") + tree_bytes(saved / "saved_model.pb")
        representative = golden_images(size, 64, seed=4321)
        for fmt, quantize in VARIANTS:
            label = f"{fmt} {quantize or 'float32'}" if fmt == "tflite" else fmt
            folder = root / label.replace(" ", "-")
            folder.mkdir()
            file = format_module(fmt).convert(saved, folder, quantize=quantize, representative=representative)
            facts = {"input_size": size, "crop_margin": contract.DEFAULT_CROP_MARGIN, "threshold": 0.5}
            (folder / FACTS_FILE).write_bytes(orjson.dumps(facts))
            edge = EdgeModel(file)
            got = edge(batch)[contract.PROBABILITY_OUTPUT]
            diff = float(np.max(np.abs(got - expected)))
            rows += [
                {
                    "name": f"{label} ({name} {size}): ms per crop, batch 32",
                    "value": per_crop_ms(edge, batch, RUNS),
                    "unit": "ms",
                    "baseline": saved_batch_ms,
                    "baseline_name": "SavedModel in TF, batch 32",
                    "goal": "report (< 1: faster)",
                },
                {
                    "name": f"{label}: ms per crop, one crop a call",
                    "value": per_crop_ms(edge, single, RUNS),
                    "unit": "ms",
                    "baseline": saved_single_ms,
                    "baseline_name": "SavedModel in TF, one crop",
                    "goal": "report (< 1: faster)",
                },
                {
                    "name": f"{label}: file size",
                    "value": tree_bytes(file) / 1e6,
                    "unit": "MB",
                    "baseline": saved_bytes / 1e6,
                    "baseline_name": "SavedModel (graph + variables)",
                    "goal": "report",
                },
                {
                    "name": f"{label}: max |p - p_savedmodel|, 32 crops",
                    "value": diff,
                    "unit": "",
                    "baseline": None,
                    "baseline_name": "-",
                    "goal": "<= 0.02 quantized, <= 1e-4 float",
                },
            ]
    return rows
