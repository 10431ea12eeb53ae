"""ONNX: tf2onnx on the frozen ``serving_default`` graph; run by ONNX Runtime.

tf2onnx is the maintained TensorFlow -> ONNX converter (Keras 3's own ``export(format="onnx")``
calls it too, for the TensorFlow backend). tf2onnx 1.17 is the first release that accepts the
protobuf TensorFlow 2.20 runs on (6.x): pinned in the ``edge`` extra.
Opset 17: ONNX Runtime and onnxruntime-web both run it.
"""

from __future__ import annotations

import pathlib
import warnings
from collections.abc import Iterable

import numpy as np

from deepfake_client import contract

EXTENSION = ".onnx"
RUNTIME = "onnxruntime"
OPSET = 17


def convert(
    saved: pathlib.Path,
    folder: pathlib.Path,
    *,
    quantize: str | None = None,
    representative: Iterable[np.ndarray] | None = None,
) -> pathlib.Path:
    """Write ``folder/model.onnx`` (input ``images``; outputs ``fake_probability`` and ``logit``).

    Converted from ``serving_default`` of the SavedModel at ``saved``, frozen first by TensorFlow's
    own ``convert_variables_to_constants_v2``: handed the function, tf2onnx left Keras 3's captured
    constants (EfficientNet's ``Normalization`` mean and variance) as extra graph inputs.
    """
    import onnx
    import tensorflow as tf
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    if quantize is not None:
        raise ValueError("the onnx format is float32 only (quantize: tflite)")
    loaded = tf.saved_model.load(str(saved))  # kept alive: the function refers to its variables
    function = loaded.signatures[contract.DEFAULT_SIGNATURE]
    frozen = convert_variables_to_constants_v2(function)
    # TensorFlow's tensor names ("images:0", "Identity:0") -> the contract's; the outputs come in
    # the order of the flattened output dict, i.e. of its sorted keys
    names = {frozen.inputs[0].name: contract.IMAGES_INPUT}
    names.update(zip((t.name for t in frozen.outputs), sorted(function.structured_outputs), strict=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:  # tf2onnx 1.17 still uses numpy 1 names; Keras patches them for its own ONNX export
            from keras.src.export.tf2onnx_lib import patch_tf2onnx

            patch_tf2onnx()
        except ImportError:
            pass
        model, _ = tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(),
            input_names=[t.name for t in frozen.inputs],
            output_names=[t.name for t in frozen.outputs],
            opset=OPSET,
        )
    for node in model.graph.node:
        node.input[:] = [names.get(n, n) for n in node.input]
        node.output[:] = [names.get(n, n) for n in node.output]
    for value in [*model.graph.input, *model.graph.output]:
        value.name = names.get(value.name, value.name)
    path = folder / f"model{EXTENSION}"
    onnx.save(model, str(path))
    return path
