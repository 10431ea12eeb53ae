"""``deepfake-tune``: the command line of :mod:`training.tune` (beside :mod:`training.cli`, which it
shares its options, error handling and output with)."""

from __future__ import annotations

import argparse

from deepfake_client.errors import InvalidInputError
from training.cli import _common, _fmt, _run, add_distribute_options


def tune_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-tune",
        description="Search learning rate, batch size, dropout, augmentation strength and backbone with "
        "Keras Tuner (Bayesian optimisation), each trial a training run scored by validation video-level "
        "AUC. Writes trials.csv, trials.json, tuning.png and best.yaml (deepfake-train --config "
        "DIR/best.yaml). Re-running the command resumes the search.",
    )
    parser.add_argument("--config", required=True, help="preset name (training/configs/) or YAML file")
    parser.add_argument("--data", required=True, help="crops folder written by deepfake-prepare")
    parser.add_argument("--out", required=True, help="search folder (new, empty, or a search to resume)")
    parser.add_argument("--trials", required=True, type=int, help="number of trials (training runs)")
    parser.add_argument(
        "--backbones", help="comma-separated backbones to search (default: the preset's backbone only)"
    )
    parser.add_argument(
        "--folds",
        type=int,
        default=0,
        help="k-fold cross-validation over train+val videos, grouped by identity (default 0: the val split)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a key of --config"
    )
    add_distribute_options(parser)
    _common(parser)
    return parser


def tune_main(argv: list[str] | None = None) -> int:
    """``deepfake-tune``."""
    args = tune_parser().parse_args(argv)

    def command() -> dict:
        from training.config import load_config
        from training.distribute import split_cpu
        from training.tune import tune

        if args.trials < 1:  # before the preset is read or TensorFlow starts
            raise InvalidInputError(f"--trials must be >= 1, got {args.trials}")
        config = load_config(args.config, args.set)
        if args.cpu_devices is not None:
            split_cpu(args.cpu_devices)  # before TensorFlow starts
        backbones = [b.strip() for b in args.backbones.split(",") if b.strip()] if args.backbones else None
        return tune(
            config,
            args.data,
            args.out,
            trials=args.trials,
            backbones=backbones,
            folds=args.folds,
            distribute=args.distribute,
            preset=args.config,
        )

    def show(result: dict) -> None:
        keys = ("learning_rate", "batch_size", "dropout", "augment_strength", "backbone")
        print(f"{len(result['trials'])} trials in {result['out']} ({result['search_seconds']} s)")
        print(f"  {'trial':>6} {'val AUC':>8}  " + "  ".join(f"{k:>16}" for k in keys))
        for row in result["trials"]:
            print(
                f"  {row['trial']:>6} {_fmt(row['val_video_auc']):>8}  "
                + "  ".join(f"{_short(row.get(k)):>16}" for k in keys)
            )
        best = result["best"]
        print(f"  best: trial {best['trial']}, val video AUC {best['val_video_auc']:.3f} -> {best['yaml']}")

    return _run("deepfake-tune", args, command, show)


def _short(value: object) -> str:
    """A hyperparameter for people: 3 significant digits (a learning rate of 0.0003 is not 0.000)."""
    return f"{value:.3g}" if isinstance(value, float) else _fmt(value)
