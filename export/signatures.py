"""The serving signatures of Contract 2, wrapped around a trained Keras model, saved as a SavedModel.

- ``serving_default``: ``images`` uint8 ``[batch, S, S, 3]`` -> ``fake_probability`` and
  ``logit``, float32 ``[batch]``;
- ``encoded``: ``image_bytes`` string ``[batch]`` (JPEG or PNG crops) -> the same;
- ``model_info``: ``batch`` int32 ``[n]`` (a dummy) -> ``input_size``, ``crop_margin``,
  ``threshold``, each ``[n]``.

A version with a temporal model (``training.temporal``) also has

- ``sequence``: ``frames`` uint8 ``[batch, T, S, S, 3]`` and ``lengths`` int32 ``[batch]`` ->
  ``fake_probability`` and ``logit``, float32 ``[batch]``, one per track: the first ``lengths[i]``
  crops of sequence ``i`` are the track, the rest is padding the model masks (a length outside
  ``1..T`` is clipped into it);

and its ``model_info`` answers two more outputs, ``sequence_length`` (``T``) and
``sequence_threshold`` (of the combined score). The frame signatures do not change.

``model_info`` is how a client learns what it must know about a version from the server itself, so
a new version may change its crop margin or threshold without a client release. Its dummy input
exists because TF Serving's REST API refuses a signature without inputs, and its outputs keep a
batch dimension because TF Serving's batching needs one on every tensor. Normalisation is part of
the Keras model; no XLA (TF Serving runs without it).
"""

from __future__ import annotations

import pathlib
from typing import Any

from deepfake_client import contract


def build_serving_module(
    model: Any,
    input_size: int,
    crop_margin: float,
    threshold: float,
    *,
    sequence_model: Any = None,
    sequence_threshold: float | None = None,
) -> Any:
    """Wrap ``model`` (uint8 RGB ``[batch, S, S, 3]`` in, one logit per image out) in the signatures.

    ``sequence_model`` (``training.temporal.build_sequence_model``'s, ``{"frames", "mask"}`` in)
    adds the ``sequence`` signature and ``model_info``'s ``sequence_length`` and
    ``sequence_threshold`` (default: ``threshold``).

    Returns:
        A ``tf.Module`` holding the model(s) and the ``tf.function`` endpoints.
    """
    import tensorflow as tf

    size = int(input_size)
    margin = float(crop_margin)
    cutoff = float(threshold)
    module = tf.Module()
    module.model = model

    def score(images: tf.Tensor) -> dict[str, tf.Tensor]:
        logit = tf.reshape(tf.cast(model(tf.cast(images, tf.float32), training=False), tf.float32), [-1])
        return {contract.PROBABILITY_OUTPUT: tf.sigmoid(logit), contract.LOGIT_OUTPUT: logit}

    @tf.function(input_signature=[tf.TensorSpec([None, size, size, 3], tf.uint8, name=contract.IMAGES_INPUT)])
    def serving_default(images: tf.Tensor) -> dict[str, tf.Tensor]:
        return score(images)

    def decode(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_image(data, channels=3, expand_animations=False)
        image.set_shape([None, None, 3])
        # A crop of another size is resized; one of size S passes through unchanged (bilinear at scale 1).
        resized = tf.image.resize(tf.cast(image, tf.float32), [size, size], method="bilinear", antialias=True)
        return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=contract.IMAGE_BYTES_INPUT)])
    def encoded(image_bytes: tf.Tensor) -> dict[str, tf.Tensor]:
        images = tf.map_fn(decode, image_bytes, fn_output_signature=tf.TensorSpec([size, size, 3], tf.uint8))
        return score(images)

    length = int(sequence_model.inputs[0].shape[1]) if sequence_model is not None else 0
    sequence_cutoff = float(threshold if sequence_threshold is None else sequence_threshold)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32, name=contract.INFO_INPUT)])
    def model_info(batch: tf.Tensor) -> dict[str, tf.Tensor]:
        n = tf.shape(batch)[:1]
        info = {
            contract.INFO_INPUT_SIZE: tf.fill(n, tf.constant(size, tf.int32)),
            contract.INFO_CROP_MARGIN: tf.fill(n, tf.constant(margin, tf.float32)),
            contract.INFO_THRESHOLD: tf.fill(n, tf.constant(cutoff, tf.float32)),
        }
        if length:
            info[contract.INFO_SEQUENCE_LENGTH] = tf.fill(n, tf.constant(length, tf.int32))
            info[contract.INFO_SEQUENCE_THRESHOLD] = tf.fill(n, tf.constant(sequence_cutoff, tf.float32))
        return info

    module.serving_default = serving_default
    module.encoded = encoded
    module.model_info = model_info
    if sequence_model is not None:
        module.sequence_model = sequence_model
        module.sequence = _sequence_function(sequence_model, size, length)
    return module


def _sequence_function(sequence_model: Any, size: int, length: int) -> Any:
    import tensorflow as tf

    from training.temporal import sequence_mask

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, length, size, size, 3], tf.uint8, name=contract.SEQUENCE_FRAMES_INPUT),
            tf.TensorSpec([None], tf.int32, name=contract.SEQUENCE_LENGTHS_INPUT),
        ]
    )
    def sequence(frames: tf.Tensor, lengths: tf.Tensor) -> dict[str, tf.Tensor]:
        inputs = {"frames": tf.cast(frames, tf.float32), "mask": sequence_mask(lengths, length)}
        logit = tf.reshape(tf.cast(sequence_model(inputs, training=False), tf.float32), [-1])
        return {contract.PROBABILITY_OUTPUT: tf.sigmoid(logit), contract.LOGIT_OUTPUT: logit}

    return sequence


def signature_functions(module: Any) -> dict[str, Any]:
    """The concrete functions of the signatures (three, four with a temporal model), by name."""
    functions = {
        contract.DEFAULT_SIGNATURE: module.serving_default.get_concrete_function(),
        contract.ENCODED_SIGNATURE: module.encoded.get_concrete_function(),
        contract.INFO_SIGNATURE: module.model_info.get_concrete_function(),
    }
    if hasattr(module, "sequence"):
        functions[contract.SEQUENCE_SIGNATURE] = module.sequence.get_concrete_function()
    return functions


def save_serving_model(module: Any, path: str | pathlib.Path) -> None:
    """Write ``module`` as a SavedModel at ``path`` (which must be empty or missing)."""
    import tensorflow as tf

    tf.saved_model.save(module, str(path), signatures=signature_functions(module))
