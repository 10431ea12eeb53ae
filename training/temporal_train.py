"""Training a run with a temporal model: the frame model first, then the head over face tracks.

``train_temporal(config, data_dir, out_dir)`` runs ``training.train.train`` (the frame model, its
threshold and report: a complete frame run), then, unless the run already has one, trains the
temporal model (``training.temporal``) on the same split's tracks and writes ``temporal.keras``
and a ``temporal`` section into ``run.json`` (rewritten atomically): ``T``, head, mode, the
thresholds of the temporal and the combined score chosen on validation, and the frame-only,
temporal and combined video metrics of val and test side by side. The export
(``export.version``) then adds the ``sequence`` signature to the version.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import pathlib
import sys
import time

from deepfake_client.errors import InvalidInputError
from training.config import TrainConfig

log = logging.getLogger(__name__)


def train_temporal(
    config: TrainConfig | str,
    data_dir: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    verbose: int = 2,
    **train_options: object,
) -> pathlib.Path:
    """Train the frame model and then the temporal model of ``config``; return the run folder.

    ``train_options`` go to the frame model's :func:`training.train.train` (``distribute``).

    Raises:
        InvalidInputError: as :func:`training.train.train`, or a split has no track of at least
            4 crops of both classes (prepare more frames per video: ``--frames``).
    """
    import keras

    from training.config import load_config
    from training.data import load_crops
    from training.evaluate import RUN_INFO, load_run_model, predict_crops, read_run_info
    from training.temporal import TEMPORAL_MODEL, build_sequence_model
    from training.temporal_data import load_sequences, sequence_dataset
    from training.temporal_eval import (
        choose_thresholds,
        plot_side_by_side,
        predict_sequences,
        sequence_batch_size,
        side_by_side,
        video_table,
    )
    from training.train import train

    if isinstance(config, str):
        config = load_config(config)
    data_dir = pathlib.Path(data_dir)
    size, length = config.resolved_input_size(), config.sequence_length
    train_seqs = load_sequences(data_dir, "train", length, size)  # checked before the frame run starts
    val_seqs = load_sequences(data_dir, "val", length, size)
    for split, seqs in (("train", train_seqs), ("val", val_seqs)):
        if len(set(seqs.labels.tolist())) < 2:
            raise InvalidInputError(
                f"{data_dir}: the {split} split has no face track of at least 4 crops of both classes "
                f"({len(seqs)} sequences): prepare more frames per video (deepfake-prepare --frames 16)"
            )
    out = train(config, data_dir, out_dir, verbose=verbose, **train_options)
    info = read_run_info(out)
    if info.get("temporal") and (out / TEMPORAL_MODEL).is_file():
        return out

    started = time.monotonic()
    keras.utils.set_random_seed(config.seed)
    frame_model = load_run_model(out)
    model = build_sequence_model(
        frame_model,
        length,
        head=config.temporal_head,
        units=config.temporal_units,
        mode=config.temporal_mode,
        dropout=config.dropout,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.temporal_learning_rate),
        loss=keras.losses.BinaryCrossentropy(from_logits=True),
        metrics=[keras.metrics.AUC(from_logits=True, name="auc")],
    )
    batched = dataclasses.replace(config, batch_size=sequence_batch_size(config))
    best = out / "checkpoints" / "temporal_best.keras"
    best.parent.mkdir(parents=True, exist_ok=True)
    log.info(
        "training the %s head (%s) over %d train and %d val sequences of T=%d",
        config.temporal_head,
        config.temporal_mode,
        len(train_seqs),
        len(val_seqs),
        length,
    )
    with contextlib.redirect_stdout(sys.stderr):  # Keras prints progress on stdout; results go there
        model.fit(
            sequence_dataset(train_seqs, batched, training=True),
            validation_data=sequence_dataset(val_seqs, batched, training=False),
            epochs=config.temporal_epochs,
            callbacks=[
                keras.callbacks.ModelCheckpoint(str(best), monitor="val_loss", save_best_only=True),
                keras.callbacks.CSVLogger(str(out / "temporal_history.csv")),
            ],
            verbose=verbose,
        )
    seconds = time.monotonic() - started
    best.replace(out / TEMPORAL_MODEL)
    model = keras.models.load_model(out / TEMPORAL_MODEL, compile=False)

    thresholds, metrics, plots = {}, {}, []
    for split in ("val", "test"):
        crops = load_crops(data_dir, split)
        if not len(crops):
            continue
        seqs = val_seqs if split == "val" else load_sequences(data_dir, split, length, size)
        table = video_table(
            crops,
            predict_crops(frame_model, crops, config, size),
            seqs,
            predict_sequences(model, seqs, config),
            config.aggregate,
        )
        if split == "val":  # thresholds on validation, as the frame model's
            thresholds = choose_thresholds(table, config.threshold_metric)
        metrics[split] = side_by_side(table, {"frame": float(info["threshold"]), **thresholds})
        name = f"roc_temporal_{split}.png"
        plot_side_by_side(table, out / name, f"{split}: frame-only vs temporal (video level)")
        plots.append(name)
    info["temporal"] = {
        "model": TEMPORAL_MODEL,
        "sequence_length": length,
        "head": config.temporal_head,
        "mode": config.temporal_mode,
        "rule": "max",  # deepfake_client.sequences.combine
        "thresholds": thresholds,
        "metrics": metrics,
        "sequences": {"train": len(train_seqs), "val": len(val_seqs)},
        "seconds": round(seconds, 1),
        "plots": plots,
    }
    tmp = out / (RUN_INFO + ".tmp")
    tmp.write_text(json.dumps(info, indent=2))
    tmp.replace(out / RUN_INFO)
    return out
