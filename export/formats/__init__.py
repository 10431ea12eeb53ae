"""Edge formats of a trained run, one module per format behind ``deepfake-export --format``.

| format | module | file | runtime |
| --- | --- | --- | --- |
| ``savedmodel`` | :mod:`export.version` | a version in the model repository | TF Serving |
| ``tflite`` | :mod:`export.formats.tflite` | ``model.tflite`` (float32, float16, int8) | LiteRT |
| ``onnx`` | :mod:`export.formats.onnx` | ``model.onnx`` | ONNX Runtime |
| ``tfjs`` | :mod:`export.formats.tfjs` | ``model.onnx`` for the browser | onnxruntime-web |

Every edge file takes uint8 ``[b, S, S, 3]`` RGB crops and returns ``fake_probability`` (and
``logit``), float32 ``[b]``: the ``serving_default`` signature of Contract 2, converted from the
very SavedModel the run exports. Beside it ``model.json`` holds the version's facts (input size,
crop margin, threshold: what ``model_info`` answers), and ``parity.json`` the check against that
SavedModel (:mod:`export.formats.parity`). :mod:`export.formats.edge` does the common part.

Each format module has ``EXTENSION``, ``RUNTIME`` and ``convert(saved_model, folder, *,
quantize, representative) -> path`` (the SavedModel's ``serving_default``, frozen).
"""

from __future__ import annotations

import importlib
from types import ModuleType

FORMATS = ("savedmodel", "tflite", "onnx", "tfjs")
EDGE_FORMATS = ("tflite", "onnx", "tfjs")
QUANTIZE = ("float16", "int8")


def format_module(name: str) -> ModuleType:
    """The module of an edge format (imported on demand: each pays for its own converter)."""
    if name not in EDGE_FORMATS:
        raise ValueError(f"not an edge format: {name!r}")
    return importlib.import_module(f"export.formats.{name}")
