"""ONNX: tf2onnx on the ``serving_default`` function; run by ONNX Runtime.

tf2onnx is the maintained TensorFlow -> ONNX converter (Keras 3's own ``export(format="onnx")``
calls it too, for the TensorFlow backend). Only tf2onnx 1.17 accepts protobuf 5, which TensorFlow
2.19 needs; with it, ``onnx`` 1.22 (1.23 wants protobuf 6+): pinned in the ``edge`` extra.
Opset 17: ONNX Runtime and onnxruntime-web both run it.
"""

from __future__ import annotations

import pathlib
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np

from deepfake_client import contract

EXTENSION = ".onnx"
RUNTIME = "onnxruntime"
OPSET = 17


def convert(
    module: Any,
    saved: pathlib.Path,
    folder: pathlib.Path,
    *,
    quantize: str | None = None,
    representative: Iterable[np.ndarray] | None = None,
) -> pathlib.Path:
    """Write ``folder/model.onnx`` (input ``images``; outputs ``fake_probability`` and ``logit``).

    Converted from the serving module's ``serving_default`` (``saved``, its SavedModel, is unused:
    tf2onnx wants the ``tf.function``).
    """
    import tensorflow as tf
    import tf2onnx

    if quantize is not None:
        raise ValueError("the onnx format is float32 only (quantize: tflite)")
    spec = module.serving_default.input_signature[0]
    signature = [tf.TensorSpec(spec.shape, spec.dtype, name=contract.IMAGES_INPUT)]
    path = folder / f"model{EXTENSION}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # tf2onnx 1.17 still uses numpy 1 names; Keras patches them for its own ONNX export
            from keras.src.export.tf2onnx_lib import patch_tf2onnx

            patch_tf2onnx()
        except ImportError:
            pass
        tf2onnx.convert.from_function(
            module.serving_default, input_signature=signature, opset=OPSET, output_path=str(path)
        )
    return path
