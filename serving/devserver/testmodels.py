"""Small real SavedModels for the dev server's tests, fixtures and benchmark.

- :func:`write_half_plus_two`: TF Serving's own test subject rebuilt with ``tf.Module``
  (``y = 0.5 * x + plus``), with extra signatures covering several inputs, strings and bytes.
- :func:`write_contract_model`: a version exported by the real export path (Contract 2
  signatures, warm-up, model.json, golden batch) whose logit reveals its version, so a test can
  tell which version answered.
- :func:`write_probe_model`: a model whose outputs reveal the batch it ran in (its size, first row
  and sum) and its version, with a ``slow`` signature that sleeps inside the graph, for the
  batching and hand-over tests.

All write warm-up records (a TFRecord of PredictionLog) like the real export path does.
"""

from __future__ import annotations

import pathlib

import numpy as np

from deepfake_client import contract


def write_warmup(path: pathlib.Path, requests: list[tuple[str, dict[str, np.ndarray]]]) -> None:
    """Write ``assets.extra/tf_serving_warmup_requests`` with one Predict record per request."""
    from export import warmup

    warmup.write_warmup(
        path / contract.WARMUP_FILE, [warmup.predict_log(sig, inputs) for sig, inputs in requests]
    )


def write_half_plus_two(path: str | pathlib.Path, *, plus: float = 2.0, warmup: bool = True) -> pathlib.Path:
    """Save ``y = 0.5 * x + plus`` (float32 ``[-1]``) with signatures ``serving_default`` (x -> y),
    ``multi`` (a float32 [-1,2], b int32 [-1] -> c float32 [-1], d int64 [-1]), ``strings``
    (text string [-1] -> length int32 [-1], echo_bytes string [-1], echo string [-1]), and TF
    Serving's serialized-``tf.Example`` signatures (feature ``x``, float [1]): ``regress_x_to_y``
    (``inputs`` -> ``outputs`` = 0.5 x + plus), ``regress_x_to_y2`` (0.5 x + plus + 1),
    ``classify_x_to_y`` (``inputs`` -> ``scores`` [-1, 1]) and ``classify_classes`` (``inputs`` ->
    ``classes`` ["low", "high"] and ``scores`` [1 - p, p], p = sigmoid(x))."""
    import tensorflow as tf

    path = pathlib.Path(path)

    class HalfPlusTwo(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = tf.Variable(0.5)
            self.b = tf.Variable(float(plus))

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def predict(self, x: tf.Tensor) -> dict:
            return {"y": self.a * x + self.b}

        @tf.function(
            input_signature=[
                tf.TensorSpec([None, 2], tf.float32, name="a"),
                tf.TensorSpec([None], tf.int32, name="b"),
            ]
        )
        def multi(self, a: tf.Tensor, b: tf.Tensor) -> dict:
            c = tf.reduce_sum(a, axis=1) + tf.cast(b, tf.float32)
            return {"c": c, "d": tf.cast(b, tf.int64) * 2}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="text")])
        def strings(self, text: tf.Tensor) -> dict:
            return {"length": tf.strings.length(text), "echo_bytes": text, "echo": text}

        def _x(self, serialized: tf.Tensor) -> tf.Tensor:
            return tf.io.parse_example(serialized, {"x": tf.io.FixedLenFeature([1], tf.float32)})["x"]

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x_to_y(self, inputs: tf.Tensor) -> dict:
            return {"outputs": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def regress_x_to_y2(self, inputs: tf.Tensor) -> dict:
            return {"outputs": self.a * self._x(inputs) + self.b + 1.0}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_x_to_y(self, inputs: tf.Tensor) -> dict:
            return {"scores": self.a * self._x(inputs) + self.b}

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="inputs")])
        def classify_classes(self, inputs: tf.Tensor) -> dict:
            p = tf.sigmoid(self._x(inputs))
            classes = tf.tile(tf.constant([["low", "high"]]), [tf.shape(p)[0], 1])
            return {"classes": classes, "scores": tf.concat([1.0 - p, p], axis=1)}

    module = HalfPlusTwo()
    tf.saved_model.save(
        module,
        str(path),
        signatures={
            "serving_default": module.predict,
            "multi": module.multi,
            "strings": module.strings,
            "regress_x_to_y": module.regress_x_to_y,
            "regress_x_to_y2": module.regress_x_to_y2,
            "classify_x_to_y": module.classify_x_to_y,
            "classify_classes": module.classify_classes,
        },
    )
    if warmup:
        write_warmup(path, [("serving_default", {"x": np.array([1.0, 2.0], np.float32)})])
    return path


def write_contract_model(
    path: str | pathlib.Path,
    *,
    version: int = 1,
    input_size: int = 32,
    crop_margin: float = 0.3,
    threshold: float = 0.5,
) -> pathlib.Path:
    """Export, through the real export path, a model whose logit is ``mean(pixels)/255 - 0.5 + version``,
    so ``round(logit)`` of a mid-grey image is the version that answered."""
    import keras

    from export.version import build_version

    inputs = keras.Input((input_size, input_size, 3))
    pooled = keras.layers.GlobalAveragePooling2D()(inputs)  # the mean of each channel
    dense = keras.layers.Dense(1)  # their mean / 255, plus version - 0.5
    model = keras.Model(inputs, dense(pooled))
    dense.set_weights([np.full((3, 1), 1 / (3 * 255.0), np.float32), np.array([version - 0.5], np.float32)])
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    build_version(
        path, model, crop_margin=crop_margin, threshold=threshold, backbone="version-probe", version=version
    )
    return path


def write_probe_model(path: str | pathlib.Path, *, version: int = 1, warmup: bool = True) -> pathlib.Path:
    """Save a model that reports how it was run.

    Signatures: ``serving_default`` (``x`` float32 ``[-1]``) and ``slow`` (``x`` and ``delay_ms``
    int32 ``[-1]``: the graph sleeps ``max(delay_ms)`` ms first, without using the CPU). Both return,
    per row: ``echo`` (x), ``batch_size`` (rows the graph ran with, padding included),
    ``batch_first`` (the batch's first x), ``batch_sum`` (the sum of the batch's x) and ``version``.
    """
    import tensorflow as tf
    from tensorflow.python.data.experimental.ops import testing as data_testing

    path = pathlib.Path(path)

    class Probe(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.version = tf.Variable(int(version), dtype=tf.int32)

        def _report(self, x: tf.Tensor) -> dict:
            rows = tf.shape(x)[0]
            first = tf.cond(rows > 0, lambda: x[0], lambda: tf.constant(0.0))
            return {
                "echo": x,
                "batch_size": tf.fill([rows], rows),
                "batch_first": tf.fill([rows], first),
                "batch_sum": tf.fill([rows], tf.reduce_sum(x)),
                "version": tf.fill([rows], self.version),
            }

        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32, name="x")])
        def serving_default(self, x: tf.Tensor) -> dict:
            return self._report(x)

        @tf.function(
            input_signature=[
                tf.TensorSpec([None], tf.float32, name="x"),
                tf.TensorSpec([None], tf.int32, name="delay_ms"),
            ]
        )
        def slow(self, x: tf.Tensor, delay_ms: tf.Tensor) -> dict:
            micros = tf.cast(tf.reduce_max(tf.concat([delay_ms, [0]], 0)), tf.int64) * 1000
            # SleepDataset (a core TF op): the graph waits without spinning.
            x = tf.data.Dataset.from_tensors(x).apply(data_testing.sleep(micros)).take(1).get_single_element()
            return self._report(x)

    module = Probe()
    tf.saved_model.save(
        module, str(path), signatures={"serving_default": module.serving_default, "slow": module.slow}
    )
    if warmup:
        write_warmup(path, [("serving_default", {"x": np.array([0.0], np.float32)})])
    return path
