"""``tfjs``: the model for the browser, as ONNX for onnxruntime-web (not a TF.js graph model).

The ``tensorflowjs`` converter cannot be installed beside this TensorFlow: tensorflowjs 4.22 pins
tensorflow 2.19.0 (this project has 2.20, the TF Serving image's minor) and pulls jax, jaxlib,
flax, tf_keras and tensorflow_decision_forests. So the browser gets the ONNX model instead, run by
onnxruntime-web (WebAssembly), which the upload page's on-device mode vendors
(``scripts/vendor_web.py``). The file is the ``onnx`` format's; ``model.json`` says
``runtime: onnxruntime-web`` and that ``tfjs`` was asked for, and ``deepfake-export`` says so on
stderr. Serve it with ``deepfake-web --device-model DIR``.
"""

from __future__ import annotations

from export.formats.onnx import EXTENSION, convert

RUNTIME = "onnxruntime-web"
NOTICE = (
    "tensorflowjs cannot be installed beside TensorFlow 2.20 (it pins tensorflow 2.19.0 and pulls "
    "jax/flax): writing the ONNX model for onnxruntime-web instead (the upload page's on-device mode)"
)

__all__ = ["EXTENSION", "NOTICE", "RUNTIME", "convert"]
