"""Batch-norm statistics measured on the whole training set ("precise BN").

A short run keeps its batch-norm moving averages over a handful of noisy batches; at inference
they can sit far from the statistics the layers were trained with, which shifts every logit by
the same amount: the validation AUC stays high while the probabilities (and any threshold chosen
on them) swing from one epoch, or one seed, to the next. :func:`set_population_statistics` puts
each batch-norm layer's exact mean and variance over the training crops (unaugmented) into its
moving averages, layer after layer, so the model at inference normalises the way the data is.
"""

from __future__ import annotations

import logging

from deepfake_client.errors import InvalidInputError

log = logging.getLogger(__name__)


def batchnorm_probes(model) -> list[tuple]:
    """``(layer, probe)`` for every ``BatchNormalization`` layer, in graph order, with ``probe`` a
    Keras callable from the model's inputs to the layer's input.

    Batch-norm layers inside nested functional models (the Keras-application backbones are called
    as one layer) are reached through the nested model: the outer inputs go to the nested model's
    input, then on to the layer.
    """
    import keras

    def walk(net, entry) -> list[tuple]:  # entry: outer inputs -> net's inputs (None: the same)
        # one input as a tensor, not a list of one: called with a tensor, Keras warns otherwise
        inputs = net.inputs[0] if len(net.inputs) == 1 else net.inputs
        found = []
        for layer in net.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                found.append((layer, _chain(entry, keras.Model(inputs, _call_in(net, layer)))))
            elif isinstance(layer, keras.Model) and getattr(layer, "inputs", None):
                found += walk(layer, _chain(entry, keras.Model(inputs, _call_in(net, layer))))
        return found

    return walk(model, None)


def _call_in(net, layer):
    """The input tensors of ``layer``'s one call inside ``net``'s graph.

    ``layer.input`` is a nested model's own Input, or the first call anywhere (another model may
    have called the layer first). Keras 3 has no public accessor for a call's inputs: a call
    belongs to ``net`` when its node key is among ``net``'s nodes (tests/training/test_batchnorm.py
    checks this on EfficientNet-B0 and on layers called elsewhere first).
    """
    calls = [node for i, node in enumerate(layer._inbound_nodes) if f"{id(layer)}_ib-{i}" in net._nodes]
    if len(calls) != 1:
        raise InvalidInputError(
            f"{layer.name} is called {len(calls)} times in {net.name}: population batch-norm "
            "statistics need one call per batch-norm layer (and per nested model)"
        )
    return calls[0].input_tensors


def batchnorm_layers(model) -> list:
    """The model's ``BatchNormalization`` layers, nested models' included, in graph order."""
    return [layer for layer, _ in batchnorm_probes(model)]


def _chain(first, then):
    if first is None:
        return then
    return lambda x, training=False: then(first(x, training=training), training=training)


def set_population_statistics(model, images, *, chunk: int = 256) -> int:
    """Set each batch-norm layer's moving mean and variance to those of ``images``.

    Layers are done in order, each measured through the layers before it with their new
    statistics (inference mode), exactly as the model will run at serving time: one forward pass
    up to each layer, so the cost grows with the number of layers (pass a few thousand images,
    not a whole data set).

    Args:
        model: a functional ``keras.Model`` (nested functional models are looked into).
        images: the training images, ``[N, S, S, 3]`` (an array, or a ``tf.data.Dataset`` of
            batches, read once).
        chunk: images per forward pass.

    Returns:
        The number of layers updated (0 for models without batch-norm layers).
    """
    return _PopulationStatistics(model, images, chunk).update()


class _PopulationStatistics:
    """The probes (inputs -> each batch-norm layer's input) built once, the images read once."""

    def __init__(self, model, images, chunk: int):
        import numpy as np
        import tensorflow as tf

        found = batchnorm_probes(model)
        self.layers = [layer for layer, _ in found]
        # Eager calls: each probe runs a few times per validation, so tracing one tf.function per
        # probe (all sharing one Python function, and traced again for the last, smaller chunk)
        # cost more than it saved and set off TensorFlow's retracing warning.
        self.probes = [
            lambda x, probe=probe: _moments(probe(tf.convert_to_tensor(x), training=False))
            for _, probe in found
        ]
        if not isinstance(images, np.ndarray):
            images = np.concatenate([np.asarray(batch) for batch in images])
        self.images, self.chunk = images, chunk

    def update(self) -> int:
        import numpy as np

        for layer, probe in zip(self.layers, self.probes, strict=True):
            count, mean, m2 = 0, 0.0, 0.0  # chunks merged as in Chan et al.'s parallel variance
            for start in range(0, len(self.images), self.chunk):
                n, chunk_mean, chunk_var = probe(self.images[start : start + self.chunk])
                n, chunk_mean = int(n), np.asarray(chunk_mean, np.float64)
                delta = chunk_mean - mean
                m2 = m2 + np.asarray(chunk_var, np.float64) * n + delta**2 * count * n / (count + n)
                mean = mean + delta * n / (count + n)
                count += n
            variance = m2 / count
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))
        return len(self.layers)


def _moments(x):
    """``(values per channel, mean, variance)`` of a ``[..., C]`` tensor, over all but the last axis."""
    import tensorflow as tf

    x = tf.reshape(tf.cast(x, tf.float32), [-1, tf.shape(x)[-1]])
    mean, variance = tf.nn.moments(x, axes=[0])
    return tf.shape(x)[0], mean, variance


def population_statistics_callback(images):
    """A Keras callback that sets population statistics before each validation (and so before
    each checkpoint): validation metrics and the saved model see the statistics they will keep."""
    import keras

    class PopulationStatistics(keras.callbacks.Callback):
        statistics = None

        def on_test_begin(self, logs=None):
            if self.statistics is None:
                self.statistics = _PopulationStatistics(self.model, images, 256)
            self.statistics.update()

    return PopulationStatistics()
