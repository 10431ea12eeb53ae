"""Training a detector on prepared crops: ``train(config, data_dir, out_dir) -> run dir``.

A run folder holds ``config.yaml`` (the resolved config), ``history.csv``, ``checkpoints/``
(the best model so far and the backup that resumes an interrupted run), ``model.keras`` (the
best weights), plots and, written last, ``run.json``: backbone, input size, crop margin (from
the crops' manifest), the threshold chosen on validation, dataset, metrics, config, time. A
folder with ``run.json`` is a finished run; one without is resumed where it stopped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import logging
import math
import pathlib
import shutil
import sys
import tempfile
import time

from deepfake_client.errors import InvalidInputError
from training.batchnorm import population_statistics_callback
from training.config import TrainConfig, config_from_dict
from training.data import (
    class_weights,
    evenly_spread,
    load_crops,
    make_dataset,
    self_blended_validation,
    steps_per_epoch,
)
from training.distribute import Placement, distributed_input, fit_across_workers, make_strategy, scaled
from training.evaluate import (
    RUN_INFO,
    RUN_MODEL,
    predict_batches,
    predict_crops,
    public,
    split_report,
    write_plots,
)
from training.metrics import by_video, choose_threshold
from training.optim import make_optimizer, schedule_callbacks, use_sam
from training.prepare import read_info

log = logging.getLogger(__name__)


def _configure_precision(config: TrainConfig) -> str:
    import keras
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    policy = (
        "mixed_float16"
        if config.mixed_precision == "on" or (config.mixed_precision == "auto" and gpu)
        else "float32"
    )
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _check_resume(out: pathlib.Path, config: TrainConfig) -> None:
    import yaml

    saved = out / "config.yaml"
    if saved.is_file():
        previous = config_from_dict(yaml.safe_load(saved.read_text()) or {}, str(saved))
        if previous != config:
            diff = [k for k, v in config.__dict__.items() if getattr(previous, k) != v]
            raise InvalidInputError(
                f"{saved}: the unfinished run in {out} has another config ({', '.join(diff)}); "
                "use a new --out folder"
            )


def _placement(config: TrainConfig, distribute: str):
    """The strategy, where this process stands, and the config with the global batch and scaled rate."""
    strategy, cluster = make_strategy(distribute)
    replicas = strategy.num_replicas_in_sync
    batch, rate = scaled(config.batch_size, config.learning_rate, replicas, config.batch_per_replica)
    placement = Placement(
        distribute,
        replicas,
        cluster.workers if cluster else 1,
        cluster is None or cluster.chief,
        batch,
        rate,
    )
    return strategy, placement, dataclasses.replace(config, batch_size=batch, learning_rate=rate)


def _worker_folder(out: pathlib.Path) -> pathlib.Path:
    """A non-chief worker's own temporary run folder, resuming from the chief's backup if there is one."""
    work = pathlib.Path(tempfile.mkdtemp(prefix="deepfake-train-worker-"))
    backup = out / "checkpoints" / "backup"
    if backup.is_dir():  # a shared run folder (the manifest's volume): every worker resumes the same epoch
        shutil.copytree(backup, work / "checkpoints" / "backup")
    return work


def train(
    config: TrainConfig | str,
    data_dir: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    verbose: int = 2,
    distribute: str = "none",
) -> pathlib.Path:
    """Train ``config`` on the crops in ``data_dir``; write the run to ``out_dir`` and return it.

    ``config`` is a :class:`TrainConfig` or a preset name / YAML path (``"smoke"``).
    ``distribute`` is a strategy of :mod:`training.distribute`; under ``multi_worker`` only the
    chief writes ``out_dir`` (the others train in a temporary folder and return ``out_dir``).

    Validates the data before writing anything. Resumes an interrupted run in ``out_dir``; a
    finished run (``run.json`` present) is returned as it is.

    Raises:
        InvalidInputError: the crops folder is not prepared, a split lacks a class, or
            ``out_dir`` holds an unfinished run with another config.
    """
    import yaml

    from training.config import load_config

    if isinstance(config, str):
        config = load_config(config)
    data_dir, out = pathlib.Path(data_dir), pathlib.Path(out_dir)
    if (out / RUN_INFO).is_file():
        log.info("%s is a finished run; nothing to do", out)
        return out
    info = read_info(data_dir)
    size = config.resolved_input_size()
    margin = float(info["crop_margin"])
    if info["input_size"] != size:
        log.warning(
            "crops were prepared at %d px, the model takes %d px: they are resized "
            "(prepare with --size %d to train on exactly the served crops)",
            info["input_size"],
            size,
            size,
        )
    train_crops = load_crops(data_dir, "train", max_per_video=config.max_crops_per_video, seed=config.seed)
    val_crops = load_crops(data_dir, "val")
    if config.sbi:
        if not (train_crops.labels == 0).any():
            raise InvalidInputError(f"{data_dir}: self-blended training needs real crops in the train split")
    else:
        class_weights(train_crops.labels)  # raises unless both classes are present
    if config.sbi and not (val_crops.labels == 0).any():
        raise InvalidInputError(f"{data_dir}: self-blended validation needs real crops in the val split")
    if not config.sbi and len(set(val_crops.labels.tolist())) < 2:
        raise InvalidInputError(
            f"{data_dir}: the val split needs real and fake crops to choose a threshold "
            f"(it has {len(val_crops)} crops)"
        )
    _check_resume(out, config)
    # before any other TensorFlow work: a multi-worker strategy must be made first
    strategy, placement, effective = _placement(config, distribute)
    saved, config = config, effective  # the run saves what was asked; it trains on the global batch
    if min(len(train_crops), len(val_crops)) < placement.replicas:
        raise InvalidInputError(f"{data_dir}: too few train or val crops for {placement.replicas} replicas")

    import keras

    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    policy = _configure_precision(config)
    steps = steps_per_epoch(train_crops, config)
    batches = steps or max(1, math.ceil(len(train_crops) / config.batch_size))
    # built before anything is written: without its weights (offline) the run has not started
    with strategy.scope():
        model = fit_across_workers(_compile(config, size, total_steps=batches * config.epochs), distribute)
    work = out if placement.chief else _worker_folder(out)
    (work / "checkpoints").mkdir(parents=True, exist_ok=True)
    (work / "config.yaml").write_text(yaml.safe_dump(saved.as_dict(), sort_keys=False))
    train_ds = make_dataset(
        train_crops, config, size=size, training=True, margin=margin, repeat=steps is not None
    )
    if config.sbi:  # SBI validates on self-blended images only: no real fake anywhere
        val_ds, val_pairs = self_blended_validation(val_crops, config, size=size, margin=margin)
    else:
        val_ds, val_pairs = make_dataset(val_crops, config, size=size, training=False), val_crops
    one_pass = None if steps is not None else len(train_crops)
    train_ds = distributed_input(
        train_ds, placement.replicas, config.batch_size, count=one_pass, training=True
    )
    fit_val_ds = distributed_input(
        val_ds, placement.replicas, config.batch_size, count=len(val_pairs), training=False
    )
    stats_ds = (  # only for population batch-norm statistics
        make_dataset(
            evenly_spread(train_crops, config.population_bn_images), config, size=size, training=False
        ).map(lambda x, y: x)
        if config.population_bn
        else None
    )
    weights = (
        class_weights(train_crops.labels) if config.balance == "class_weight" and not config.sbi else None
    )

    best = work / "checkpoints" / "best.keras"
    monitor, mode = f"val_{config.monitor}", "max" if config.monitor == "auc" else "min"
    callbacks = [
        keras.callbacks.BackupAndRestore(str(work / "checkpoints" / "backup")),
        keras.callbacks.ModelCheckpoint(str(best), monitor=monitor, mode=mode, save_best_only=True),
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=config.early_stopping_patience),
        keras.callbacks.CSVLogger(str(work / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(work / "tensorboard")),  # a worker's own temporary folder
        *schedule_callbacks(config),
    ]
    if stats_ds is not None:
        callbacks.insert(0, population_statistics_callback(stats_ds))
    log.info(
        "training %s at %d px on %d crops (val %d), policy %s, %s: %d replica(s), global batch %d, "
        "learning rate %g",
        config.backbone,
        size,
        len(train_crops),
        len(val_crops),
        policy,
        distribute,
        placement.replicas,
        placement.global_batch,
        placement.learning_rate,
    )
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress on stdout; results go there
            model.fit(
                train_ds,
                validation_data=fit_val_ds,
                epochs=config.epochs,
                steps_per_epoch=steps,
                class_weight=weights,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,
            )
    finally:
        if not placement.chief:  # a worker's folder is its own and temporary, finished or not
            shutil.rmtree(work, ignore_errors=True)
    train_seconds = time.monotonic() - started
    keras.mixed_precision.set_global_policy("float32")
    if not placement.chief:
        return out
    config = saved

    shutil.copyfile(best, out / RUN_MODEL)
    model = keras.models.load_model(out / RUN_MODEL, compile=False)
    report = _report(model, config, data_dir, out, size, val_pairs, val_ds)
    run = {
        "backbone": config.backbone,
        "input_size": size,
        "crop_margin": margin,
        "threshold": report["threshold"],
        "dataset": {
            "path": str(data_dir.resolve()),
            "name": info.get("dataset"),
            "root": info.get("root"),
            "frames": info.get("frames"),
            "detector": info.get("detector"),  # how the crops' faces were found (and followed)
            "counts": info.get("counts"),
            "train_crops": len(train_crops),
            "val_crops": len(val_pairs),
            "self_blended": config.sbi,
            "validation": "self-blended val crops" if config.sbi else "val split",
        },
        "metrics": report["metrics"],
        "config": config.as_dict(),
        "training": {
            "seconds": round(train_seconds, 1),
            "epochs": _epochs_run(out),
            "precision_policy": policy,
            "distribute": placement.as_dict(),
        },
        "plots": report["plots"],
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    tmp = out / (RUN_INFO + ".tmp")
    tmp.write_text(json.dumps(run, indent=2))
    tmp.replace(out / RUN_INFO)  # written last: its presence means the run is finished
    shutil.rmtree(out / "checkpoints" / "backup", ignore_errors=True)
    return out


def _compile(config: TrainConfig, size: int, *, total_steps: int = 1):
    import keras

    from training.models import build_model

    model = build_model(
        config.backbone, size, config.weights, dropout=config.dropout, frequency=config.frequency
    )
    model.compile(
        optimizer=make_optimizer(config, total_steps),
        loss=keras.losses.BinaryCrossentropy(from_logits=True, label_smoothing=config.label_smoothing),
        metrics=[
            keras.metrics.AUC(from_logits=True, name="auc"),
            keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy"),
        ],
    )
    return use_sam(model, config.sam_rho)


def _epochs_run(out: pathlib.Path) -> int:
    history = out / "history.csv"
    return max(0, len(history.read_text().splitlines()) - 1) if history.is_file() else 0


def _report(
    model, config: TrainConfig, data_dir: pathlib.Path, out: pathlib.Path, size: int, val_crops, val_ds
) -> dict:
    """Threshold chosen on validation (video level, aggregated as the client does); val and test metrics.

    With SBI the validation set is the val split's real crops and their self-blended copies.
    """
    from training.plots import plot_history

    val_probs = predict_batches(model, val_ds)
    _, video_labels, video_scores, _ = by_video(val_crops, val_probs, config.aggregate)
    threshold = choose_threshold(video_labels, video_scores, config.threshold_metric)
    metrics, plots = {}, []
    for split, crops in (("val", val_crops), ("test", load_crops(data_dir, "test"))):
        if not len(crops):
            continue
        probs = val_probs if split == "val" else predict_crops(model, crops, config, size)
        report = split_report(crops, probs, threshold=threshold, aggregate=config.aggregate)
        metrics[split] = public(report)
        plots += write_plots(out, split, report)
    curves = plot_history(out / "history.csv", out / "training_curves.png")
    if curves:
        plots.append(curves.name)
    return {"threshold": threshold, "metrics": metrics, "plots": plots}
