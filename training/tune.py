"""Hyperparameter search with Keras Tuner (``deepfake-tune --config P --data CROPS --out DIR --trials N``).

Each trial is a whole training run of :func:`training.train.train` (the same pipeline, run folder
and metrics as ``deepfake-train``) into ``DIR/trials/<id>/``, scored by the validation split's
*video-level* ROC AUC (videos scored as the client scores them: :mod:`training.metrics`). With
``folds`` the train and val videos are re-split into k folds grouped by the manifest's ``group``
(a person, or a fake with its source video: no group in two folds), and a trial scores the mean
over the folds.

Why Bayesian optimisation (Keras Tuner's Gaussian-process oracle) and not Hyperband: a trial here
is a full run whose score (video AUC at the run's best epoch) exists only at its end, trials are few
(tens) and expensive, and the space mixes continuous and discrete choices; a Gaussian process
picks each next trial from all the finished ones. Hyperband needs many cheap partial runs whose
early-epoch scores rank the final ones, which short pretrained fine-tunes rarely give.

Searched: ``learning_rate`` (log-uniform, the preset's / 10 .. x 10), ``batch_size`` (the preset's
/ 2, x 1, x 2), ``dropout`` (0 .. 0.5), ``augment_strength`` (0: no augmentation, 0.5: the default
recipe of :class:`~training.config.TrainConfig`, 1: twice its magnitudes) and ``backbone`` (the
``backbones`` given; input size and weights as the preset's where they apply).

``DIR`` holds ``tune.json`` (the request), ``oracle/`` (Keras Tuner's own state: an interrupted
search resumes where it stopped, an interrupted trial's run too), ``trials.csv``, ``trials.json``,
``tuning.png`` and ``best.yaml``, which ``deepfake-train --config DIR/best.yaml`` takes.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import logging
import math
import pathlib
import sys
import time

from deepfake_client.errors import DeepfakeError, InvalidInputError
from training.config import TrainConfig, config_from_dict

log = logging.getLogger(__name__)
OBJECTIVE = "val_video_auc"
AUGMENT_KEYS = ("rotation_deg", "crop_fraction", "brightness", "contrast", "saturation", "hue")
AUGMENT_PROBABILITIES = ("blur_probability", "jpeg_probability", "noise_probability")
REQUEST = "tune.json"


def augmentation(strength: float) -> dict[str, object]:
    """The augmentation keys at ``strength`` (0 off, 0.5 the default recipe, 1 twice its magnitudes)."""
    if strength <= 0:
        return {"augment": False}
    default = TrainConfig()
    values: dict[str, object] = {"augment": True}
    for key in AUGMENT_KEYS:
        values[key] = float(getattr(default, key)) * 2 * strength
    for key in AUGMENT_PROBABILITIES:
        values[key] = min(1.0, float(getattr(default, key)) * 2 * strength)
    return values


def trial_config(base: TrainConfig, values: dict[str, object]) -> TrainConfig:
    """``base`` with a trial's ``values`` (the searched keys), checked like a preset."""
    from training.models import PRETRAINED

    backbone = str(values.get("backbone", base.backbone))
    weights = base.weights
    if backbone != base.backbone:
        weights = "imagenet" if base.weights and backbone in PRETRAINED else None
    merged = {
        **dataclasses.asdict(base),
        "backbone": backbone,
        "weights": weights,
        "learning_rate": float(values.get("learning_rate", base.learning_rate)),
        "batch_size": int(values.get("batch_size", base.batch_size)),
        "dropout": float(values.get("dropout", base.dropout)),
        **augmentation(float(values.get("augment_strength", 0.5))),
    }
    return config_from_dict(merged, "the trial's config")


def identity_folds(data_dir: pathlib.Path, folds: int, out: pathlib.Path, seed: int) -> list[pathlib.Path]:
    """Crops folders of ``folds`` train/val splits grouped by the manifest's ``group``, under ``out``.

    Train and val videos are pooled and split by scikit-learn's ``StratifiedGroupKFold`` (classes
    balanced across folds, no group in two folds); test videos stay test. A fold folder holds a
    manifest with absolute crop paths and the original ``prepare.json``: no crop is copied.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    from training.prepare import INFO, MANIFEST, read_manifest

    records = read_manifest(data_dir)
    pool = [r for r in records if r["split"] in ("train", "val")]
    groups = [str(r.get("group") or r["id"]) for r in pool]
    if len(set(groups)) < folds:
        raise InvalidInputError(
            f"{data_dir}: {len(set(groups))} groups in train+val, too few for {folds} folds"
        )
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    paths = []
    labels = [int(r["label"]) for r in pool]
    for k, (_, val_index) in enumerate(splitter.split(pool, labels, groups)):
        val = set(val_index.tolist())
        fold = out / f"fold{k}"
        fold.mkdir(parents=True, exist_ok=True)
        lines = []
        for i, record in enumerate(pool):
            moved = {**record, "split": "val" if i in val else "train"}
            moved["faces"] = [{**f, "file": str((data_dir / f["file"]).resolve())} for f in record["faces"]]
            lines.append(json.dumps(moved))
        for record in records:
            if record["split"] == "test":
                faces = [{**f, "file": str((data_dir / f["file"]).resolve())} for f in record["faces"]]
                lines.append(json.dumps({**record, "faces": faces}))
        (fold / MANIFEST).write_text("\n".join(lines) + "\n")
        (fold / INFO).write_text((data_dir / INFO).read_text())
        paths.append(fold)
    return paths


def _check_out(out: pathlib.Path, request: dict) -> bool:
    """Whether ``out`` resumes a search; refuses a folder that is not this search's (nothing overwritten)."""
    saved = out / REQUEST
    if saved.is_file():
        previous = json.loads(saved.read_text())
        # keys a newer release added come back with their defaults: compare configs, not dicts
        same_config = config_from_dict(previous.get("config") or {}, str(saved)) == config_from_dict(
            request["config"]
        )
        changed = sorted(
            k for k in request if k not in ("trials", "config") and previous.get(k) != request[k]
        ) + ([] if same_config else ["config"])
        if changed:
            raise InvalidInputError(
                f"{out} holds another search (different {', '.join(changed)}); use a new --out folder"
            )
        return True
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InvalidInputError(
            f"{out}: exists and is not empty (not a deepfake-tune folder); use a new --out"
        )
    return False


def _score(run: pathlib.Path) -> float:
    info = json.loads((run / "run.json").read_text())
    auc = info["metrics"]["val"]["video"].get("roc_auc")
    if auc is None or (isinstance(auc, float) and math.isnan(auc)):
        raise InvalidInputError(f"{run}: no video-level AUC on validation (it needs real and fake videos)")
    return float(auc)


def _searcher(kt, base: TrainConfig, backbones: list[str], folders: list[pathlib.Path], out, options):
    """A Keras Tuner ``Tuner`` whose trial is training runs of :func:`training.train.train`."""
    from training.train import train

    class RunTuner(kt.Tuner):
        def run_trial(self, trial, *args, **kwargs):
            hp = trial.hyperparameters
            rate = base.learning_rate
            values = {
                "learning_rate": hp.Float("learning_rate", rate / 10, rate * 10, sampling="log"),
                "batch_size": hp.Choice(
                    "batch_size", sorted({max(1, base.batch_size // 2), base.batch_size, base.batch_size * 2})
                ),
                "dropout": hp.Float("dropout", 0.0, 0.5),
                "augment_strength": hp.Float("augment_strength", 0.0, 1.0),
                "backbone": hp.Choice("backbone", backbones),
            }
            try:
                config = trial_config(base, values)
                started, scores = time.monotonic(), []
                for k, data in enumerate(folders):
                    run = out / "trials" / trial.trial_id / (f"fold{k}" if len(folders) > 1 else "run")
                    train(config, data, run, verbose=0, distribute=options["distribute"])
                    scores.append(_score(run))
            except DeepfakeError as err:  # Keras Tuner retries other errors; ours mean the input is wrong
                raise kt.errors.FatalError(str(err)) from err
            score = sum(scores) / len(scores)
            log.info("trial %s: %s -> val video AUC %.3f", trial.trial_id, values, score)
            folds = {f"fold{k}_auc": s for k, s in enumerate(scores)} if len(scores) > 1 else {}
            return {OBJECTIVE: score, "train_seconds": time.monotonic() - started, **folds}

    oracle = kt.oracles.BayesianOptimizationOracle(
        objective=kt.Objective(OBJECTIVE, direction="max"),
        max_trials=options["trials"],
        seed=options["seed"],
    )
    return RunTuner(oracle=oracle, directory=str(out), project_name="oracle", overwrite=False)


def _rows(tuner, out: pathlib.Path) -> list[dict]:
    rows = []
    for trial in sorted(tuner.oracle.trials.values(), key=lambda t: int(t.trial_id)):
        metrics = trial.metrics
        score = metrics.get_last_value(OBJECTIVE) if metrics.exists(OBJECTIVE) else None
        seconds = metrics.get_last_value("train_seconds") if metrics.exists("train_seconds") else None
        folds = {k: metrics.get_last_value(k) for k in sorted(metrics.metrics) if k.startswith("fold")}
        rows.append(
            {
                "trial": trial.trial_id,
                "status": str(trial.status),
                OBJECTIVE: score,
                **folds,
                **trial.hyperparameters.values,
                "train_seconds": None if seconds is None else round(float(seconds), 1),
                "run": str(out / "trials" / trial.trial_id),
            }
        )
    return rows


def _write_tables(rows: list[dict], out: pathlib.Path) -> None:
    (out / "trials.json").write_text(json.dumps(rows, indent=2))
    keys = list(dict.fromkeys(k for row in rows for k in row))
    with (out / "trials.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def _plot(rows: list[dict], path: pathlib.Path) -> pathlib.Path:
    """Each trial's validation video AUC and the best so far."""
    from training.plots import _pyplot

    plt = _pyplot()
    scored = [(i + 1, r[OBJECTIVE]) for i, r in enumerate(rows) if r[OBJECTIVE] is not None]
    fig, ax = plt.subplots(figsize=(6, 4))
    if scored:
        xs, ys = zip(*scored, strict=True)
        ax.scatter(xs, ys, label="trial")
        best = [max(ys[: i + 1]) for i in range(len(ys))]
        ax.step(xs, best, where="post", color="C1", label="best so far")
        ax.legend(loc="lower right")
    ax.set(
        xlabel="trial", ylabel="validation video AUC", title="Keras Tuner (Bayesian) search", ylim=(0, 1.02)
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def tune(
    config: TrainConfig,
    data_dir: str | pathlib.Path,
    out_dir: str | pathlib.Path,
    *,
    trials: int,
    backbones: list[str] | None = None,
    folds: int = 0,
    distribute: str = "none",
    preset: str = "",
) -> dict:
    """Search ``trials`` configurations around ``config`` on ``data_dir``; write the search to ``out_dir``.

    Returns ``{"out", "best": {"trial", "val_video_auc", "config", "yaml"}, "trials": [rows]}``.

    Raises:
        InvalidInputError: ``trials`` < 1, ``folds`` of 1 or too many, an unknown backbone, a crops
            folder that is not prepared or lacks real and fake validation videos, or an ``out_dir``
            that is another search's or not empty.
    """
    import yaml

    from training.models import MODEL_NAMES
    from training.prepare import read_info

    data_dir, out = pathlib.Path(data_dir), pathlib.Path(out_dir)
    if trials < 1:
        raise InvalidInputError(f"--trials must be >= 1, got {trials}")
    if folds == 1 or folds < 0:
        raise InvalidInputError(f"--folds must be 0 (the val split) or >= 2, got {folds}")
    if distribute == "multi_worker":  # a process makes one MultiWorkerMirroredStrategy, a search many
        raise InvalidInputError(
            "deepfake-tune runs its trials on one host (--distribute none or mirrored); "
            "train the best config across hosts with deepfake-train --distribute multi_worker"
        )
    backbones = backbones or [config.backbone]
    unknown = [b for b in backbones if b not in MODEL_NAMES]
    if unknown:
        raise InvalidInputError(f"unknown backbone(s) {', '.join(unknown)} (known: {', '.join(MODEL_NAMES)})")
    read_info(data_dir)
    request = {
        "config": config.as_dict(),
        "preset": preset,
        "data": str(data_dir.resolve()),
        "backbones": backbones,
        "folds": folds,
        "trials": trials,
    }
    resumed = _check_out(out, request)
    import keras_tuner as kt

    out.mkdir(parents=True, exist_ok=True)
    (out / REQUEST).write_text(json.dumps(request, indent=2))
    folders = identity_folds(data_dir, folds, out / "folds", config.seed) if folds else [data_dir]
    log.info("%s search of %d trials in %s", "resuming the" if resumed else "a new", trials, out)
    options = {"trials": trials, "seed": config.seed, "distribute": distribute}
    started = time.monotonic()
    try:
        with contextlib.redirect_stdout(sys.stderr):  # Keras Tuner prints its progress on stdout
            tuner = _searcher(kt, config, backbones, folders, out, options)
            tuner.oracle.max_trials = trials  # a resumed search may be given more trials
            tuner.search(verbose=0)
    except kt.errors.FatalError as err:
        cause = err.__cause__
        raise cause if isinstance(cause, DeepfakeError) else InvalidInputError(str(err)) from err
    except RuntimeError as err:  # Keras Tuner gives up after 3 failed trials in a row (logged above)
        raise InvalidInputError(f"the search stopped: {' '.join(str(err).split())[:300]}") from err
    search_seconds = time.monotonic() - started
    rows = _rows(tuner, out)
    _write_tables(rows, out)
    plot = _plot(rows, out / "tuning.png")
    finished = [r for r in rows if r[OBJECTIVE] is not None]
    if not finished:
        raise InvalidInputError(
            f"none of the {len(rows)} trials finished (their errors are logged above); {out} keeps the search"
        )
    chosen = max(finished, key=lambda r: (r[OBJECTIVE], -int(r["trial"])))  # of equals, the first trial
    best_trial = tuner.oracle.trials[chosen["trial"]]
    best = trial_config(config, best_trial.hyperparameters.values)
    score = best_trial.metrics.get_last_value(OBJECTIVE)
    header = f"# deepfake-tune: trial {best_trial.trial_id} of {out}, validation video AUC {score:.4f}\n"
    (out / "best.yaml").write_text(header + yaml.safe_dump(best.as_dict(), sort_keys=False))
    return {
        "out": str(out),
        "best": {
            "trial": best_trial.trial_id,
            OBJECTIVE: score,
            "config": best.as_dict(),
            "yaml": str(out / "best.yaml"),
        },
        "trials": rows,
        "search_seconds": round(search_seconds, 1),
        "plot": plot.name,
    }
