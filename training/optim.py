"""Optimisers and learning-rate schedules of the presets, and sharpness-aware minimisation (SAM).

SAM (Foret et al., ICLR 2021) is what the SBI paper trains with, around SGD: each step first
climbs to the worst nearby weights (``w + rho * g / |g|``), takes the gradient there, and applies
it at ``w``. It is installed on a model *instance* (:func:`use_sam`), so the saved ``model.keras``
stays a plain functional model that loads without custom objects.
"""

from __future__ import annotations

import types

from training.config import TrainConfig


def make_optimizer(config: TrainConfig, total_steps: int):
    """The optimiser of ``config`` (AdamW or SGD with momentum) with its learning rate or schedule."""
    import keras

    learning_rate = config.learning_rate
    if config.lr_schedule == "cosine":
        learning_rate = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(1, total_steps))
    if config.optimizer == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, momentum=config.momentum)
    return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=config.weight_decay)


def linear_decay_rate(config: TrainConfig, epoch: int) -> float:
    """SBI's ``LinearDecayLR``: the base rate until ``lr_decay_start`` of the epochs, then linearly
    down (``base * (n - e) / (n - start)``), reaching 0 after the last epoch."""
    start = int(config.epochs * config.lr_decay_start)
    if epoch <= start:
        return config.learning_rate
    return config.learning_rate * (config.epochs - epoch) / max(1, config.epochs - start)


def schedule_callbacks(config: TrainConfig) -> list:
    """Per-epoch callbacks that set the learning rate (``linear_decay``); none for other schedules."""
    if config.lr_schedule != "linear_decay":
        return []
    import keras

    return [keras.callbacks.LearningRateScheduler(lambda epoch, _rate: linear_decay_rate(config, epoch))]


def _sam_train_step(self, data):
    """Keras' TensorFlow ``train_step`` with SAM's two passes (metrics from the first, as SBI's code)."""
    import keras
    import tensorflow as tf

    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    weights = self.trainable_weights

    def gradients():
        with tf.GradientTape() as tape:
            y_pred = self(x, training=True)
            loss = self.compute_loss(x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=True)
            scaled = self.optimizer.scale_loss(loss)
        return y_pred, loss, tape.gradient(scaled, weights)

    y_pred, loss, first = gradients()
    self._loss_tracker.update_state(loss, sample_weight=tf.shape(x)[0])
    norm = tf.linalg.global_norm([g for g in first if g is not None])
    scale = self._sam_rho / (norm + 1e-12)
    steps = [
        None if g is None else tf.cast(g, w.dtype) * tf.cast(scale, w.dtype)
        for g, w in zip(first, weights, strict=True)
    ]
    for w, e in zip(weights, steps, strict=True):
        if e is not None:
            w.assign_add(e)
    _, _, second = gradients()
    for w, e in zip(weights, steps, strict=True):
        if e is not None:
            w.assign_sub(e)
    self.optimizer.apply_gradients(zip(second, weights, strict=True))
    return self.compute_metrics(x, y, y_pred, sample_weight=sample_weight)


def use_sam(model, rho: float):
    """Train ``model`` with SAM of radius ``rho`` (on this instance only; 0 leaves it unchanged)."""
    if rho > 0:
        model._sam_rho = float(rho)
        model.train_step = types.MethodType(_sam_train_step, model)
    return model
