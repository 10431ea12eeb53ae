"""TFLite: ``tf.lite.TFLiteConverter`` on the ``serving_default`` function; run by LiteRT.

float32 by default. ``float16`` stores the weights as float16 (half the size; LiteRT computes in
float32 on a CPU). ``int8`` is full integer quantization of the weights and activations, calibrated
on a representative set of the run's own training crops (and generated crops of the golden kind,
see ``export.formats.edge``); the uint8 input and the float32 outputs
stay as they are (the graph casts and normalises inside), so every runtime feeds it the same crops.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import numpy as np

from deepfake_client import contract

EXTENSION = ".tflite"
RUNTIME = "litert"


def convert(
    saved: pathlib.Path,
    folder: pathlib.Path,
    *,
    quantize: str | None = None,
    representative: Iterable[np.ndarray] | None = None,
) -> pathlib.Path:
    """Write ``folder/model.tflite`` from ``serving_default`` of the SavedModel at ``saved``."""
    import tensorflow as tf

    loaded = tf.saved_model.load(str(saved))
    # From the loaded signature function, not from_saved_model: this freezes the variables into
    # constants (from_saved_model keeps resource variables, which LiteRT's signature runner leaves
    # unset: NaN), and not from the in-memory Keras module (its variables came out unset too).
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [loaded.signatures[contract.DEFAULT_SIGNATURE]], loaded
    )
    if quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif quantize == "int8":
        if representative is None:
            raise ValueError("int8 quantization needs a representative set")
        batches = [np.asarray(b) for b in representative]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([b[None]] for b in batches)
    path = folder / f"model{EXTENSION}"
    path.write_bytes(converter.convert())
    return path
