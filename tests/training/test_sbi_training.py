"""The sbi recipe: SAM around SGD, SBI's linear decay, validation on self-blended images only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.config import load_config
from training.optim import linear_decay_rate, use_sam

pytestmark = pytest.mark.needs_tf


def test_sbi_preset_is_the_papers_recipe():
    config = load_config("sbi")
    assert (config.backbone, config.input_size, config.weights) == ("efficientnet_b4", 380, "imagenet")
    assert (config.optimizer, config.momentum, config.sam_rho) == ("sgd", 0.9, 0.05)
    assert (config.epochs, config.batch_size, config.learning_rate) == (100, 32, 0.001)
    assert config.lr_schedule == "linear_decay" and config.sbi and config.sbi_fake_weight == 0.0
    rates = [linear_decay_rate(config, e) for e in range(100)]  # LinearDecayLR(optimizer, 100, 75)
    assert rates[:76] == [0.001] * 76
    assert rates[76] == pytest.approx(0.001 * 24 / 25) and rates[99] == pytest.approx(0.001 / 25)


def test_sam_step_takes_the_gradient_at_the_perturbed_weights():
    import keras
    import tensorflow as tf

    x = np.array([[1.0, 2.0], [0.5, -1.0]], np.float32)
    y = np.array([[1.0], [0.0]], np.float32)

    def model():
        inputs = keras.Input((2,))
        net = keras.Model(
            inputs, keras.layers.Dense(1, kernel_initializer="ones", bias_initializer="zeros")(inputs)
        )
        net.compile(
            optimizer=keras.optimizers.SGD(0.1), loss=keras.losses.BinaryCrossentropy(from_logits=True)
        )
        return net

    def grad(kernel, bias):
        with tf.GradientTape() as tape:
            k, b = tf.constant(kernel), tf.constant(bias)
            tape.watch([k, b])
            loss = keras.losses.BinaryCrossentropy(from_logits=True)(y, x @ k + b)
        return [g.numpy() for g in tape.gradient(loss, [k, b])]

    kernel, bias = np.ones((2, 1), np.float32), np.zeros(1, np.float32)
    g = grad(kernel, bias)
    scale = 0.05 / np.sqrt(sum((a**2).sum() for a in g))
    g2 = grad(kernel + scale * g[0], bias + scale * g[1])  # SAM: the gradient at w + rho g / |g|
    sam = use_sam(model(), 0.05)
    sam.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(sam.get_weights()[0], kernel - 0.1 * g2[0], rtol=1e-5)
    plain = model()
    plain.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(plain.get_weights()[0], kernel - 0.1 * g[0], rtol=1e-5)
    assert type(sam).__name__ == "Functional"  # saved as a plain model: no custom objects


@pytest.mark.slow
def test_sbi_run_validates_on_self_blends_and_evaluates_both_protocols(prepared_crops, tmp_path):
    from training.evaluate import evaluate_run
    from training.train import train

    overrides = [
        "backbone=tiny", "input_size=64", "weights=null", "epochs=2", "batch_size=8",
        "early_stopping_patience=2", "learning_rate=0.01",
    ]  # fmt: skip
    run = train(load_config("sbi", overrides), prepared_crops, tmp_path / "run", verbose=0)
    info = json.loads((run / "run.json").read_text())
    assert info["dataset"]["validation"] == "self-blended val crops"
    val = info["metrics"]["val"]["frame"]
    assert val["real"] == val["fake"] > 0  # the val split's real crops and one blend each: no real fake
    assert info["config"]["sam_rho"] == 0.05 and info["config"]["optimizer"] == "sgd"
    report = evaluate_run(run, split="test", aggregate="mean", plots=False)
    assert report["video"]["aggregate"] == "mean" and "highest face score" in report["protocol"]["video"]
    assert report["frame"]["roc_auc"] is not None and report["video"]["roc_auc"] is not None
