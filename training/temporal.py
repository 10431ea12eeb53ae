"""The temporal model: the frame backbone on every crop of a face track, a recurrent head over time.

Inputs ``frames`` float ``[None, T, S, S, 3]`` (pixels 0..255, as the frame model takes them) and
``mask`` bool ``[None, T]`` (true for the crops of the track, false for padding); output one logit
per sequence, ``[None, 1]``. The backbone is the trained frame model without its last layer
(its ``head_dropout`` input: pooled features), applied to each crop with ``TimeDistributed``; the
head is a GRU, an LSTM (both skip masked steps) or a temporal convolution followed by a masked mean
over time (``temporal_head``). ``frozen`` keeps the backbone's weights and batch-norm statistics
as trained for frames; ``end_to_end`` trains them too (on a copy: the run's frame model is kept).

The per-step difference of the features is fed beside the features themselves: what the head must
see is change between frames, and a first difference hands it over instead of having the recurrent
units learn to subtract (measured on the flicker task: docs/benchmarks.md, "Temporal model").
The serving signature (``export.signatures``) turns the lengths a client sends into the mask.
Only standard Keras layers: ``temporal.keras`` reloads without custom objects.
"""

from __future__ import annotations

from typing import Any

FEATURE_LAYER = "head_dropout"  # training.models: the dropout before the logit; its input is pooled features
TEMPORAL_MODEL = "temporal.keras"


def frame_features(frame_model: Any, *, copy: bool) -> Any:
    """The frame model up to its pooled features ``[None, C]`` (a copy of its weights if ``copy``)."""
    import keras

    model = frame_model
    if copy:
        model = keras.models.clone_model(frame_model)
        model.set_weights(frame_model.get_weights())
    return keras.Model(model.inputs, model.get_layer(FEATURE_LAYER).input, name="frame_features")


def build_sequence_model(
    frame_model: Any,
    sequence_length: int,
    *,
    head: str = "gru",
    units: int = 32,
    mode: str = "frozen",
    dropout: float = 0.1,
) -> Any:
    """The temporal model over ``frame_model``'s backbone (see the module docstring).

    Args:
        frame_model: a trained detector from ``training.models.build_model``.
        sequence_length: ``T``.
        head: ``gru``, ``lstm`` or ``conv``.
        units: width of the head.
        mode: ``frozen`` (backbone not trained) or ``end_to_end``.
        dropout: before the logit.
    """
    import keras
    from keras import layers

    size = int(frame_model.inputs[0].shape[1])
    features = frame_features(frame_model, copy=mode == "end_to_end")
    features.trainable = mode == "end_to_end"
    frames = keras.Input(shape=(sequence_length, size, size, 3), dtype="float32", name="frames")
    mask = keras.Input(shape=(sequence_length,), dtype="bool", name="mask")
    x = layers.TimeDistributed(features, name="backbone")(frames)
    x = layers.LayerNormalization(name="feature_norm")(x)
    # the first difference (padding is masked, so a difference involving it never counts)
    shifted = layers.ZeroPadding1D((1, 0))(x)
    shifted = layers.Cropping1D((0, 1))(shifted)
    change = layers.Subtract(name="change")([x, shifted])
    x = layers.Concatenate(name="features_and_change")([x, change])
    if head == "gru":
        x = layers.GRU(units, name="gru")(x, mask=mask)
    elif head == "lstm":
        x = layers.LSTM(units, name="lstm")(x, mask=mask)
    elif head == "conv":
        # padded steps to zero first: the convolution's window reaches across the end of the track
        keep = layers.Reshape((sequence_length, 1))(keras.ops.cast(mask, "float32"))
        x = layers.Multiply(name="zero_padding")([x, keep])
        x = layers.Conv1D(units, 3, padding="same", activation="relu", name="temporal_conv")(x)
        x = layers.GlobalAveragePooling1D(name="masked_mean")(x, mask=mask)
    else:
        raise ValueError(f"unknown temporal head {head!r}")
    x = layers.Dropout(dropout, name="temporal_dropout")(x)
    logit = layers.Dense(1, dtype="float32", name="temporal_logit")(x)
    return keras.Model({"frames": frames, "mask": mask}, logit, name=f"temporal_{head}")


def sequence_mask(lengths: Any, sequence_length: int) -> Any:
    """The model's ``mask`` from int lengths ``[b]`` (``tf.sequence_mask``, clipped to ``1..T``)."""
    import tensorflow as tf

    lengths = tf.clip_by_value(tf.cast(lengths, tf.int32), 1, sequence_length)
    return tf.sequence_mask(lengths, sequence_length)
