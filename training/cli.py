"""The training CLIs: ``deepfake-prepare``, ``deepfake-train``, ``deepfake-evaluate`` (``deepfake-tune``:
:mod:`training.tune_cli`).

Results go to stdout (``--json`` for machines), progress and logs to stderr. Every
``DeepfakeError`` is one line on stderr and its exit code; ``--debug`` shows the traceback.
TensorFlow is imported only once a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import logging
import pathlib
import sys
from collections.abc import Callable

from deepfake_client.contract import DEFAULT_CROP_MARGIN
from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error
from deepfake_client.video import DEFAULT_FRAMES

DATASETS = ("dfdc", "ffpp", "celebdf", "folder", "timit")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and TensorFlow's and native libraries' own logs"
    )


def _run(
    prog: str, args: argparse.Namespace, command: Callable[[], dict], show: Callable[[dict], None]
) -> int:
    from training.quiet import quiet_tensorflow

    with quiet_tensorflow(debug=args.debug):  # before TensorFlow is imported by the command
        logging.basicConfig(
            level=logging.WARNING if args.quiet else logging.INFO,
            stream=sys.stderr,
            format=f"{prog}: %(message)s",
        )
        try:
            result = command()
        except DeepfakeError as err:
            return report_error(prog, err, debug=args.debug)
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        show(result)
    return 0


def _fmt(value: object) -> str:
    return "-" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def _metrics_table(metrics: dict[str, dict]) -> list[str]:
    keys = ("count", "accuracy", "precision", "recall", "f1", "roc_auc", "log_loss", "eer")
    lines = [f"  {'':14}" + "".join(f"{k:>10}" for k in keys)]
    for name, values in metrics.items():
        lines.append(f"  {name:14}" + "".join(f"{_fmt(values.get(k)):>10}" for k in keys))
    return lines


# --- deepfake-prepare -------------------------------------------------------------------------------


def crop_size(config: str | None, overrides: list[str], size: int | None) -> int:
    """The crop side for ``deepfake-prepare``: ``size`` if given, else the preset's input size.

    A ``size`` that differs from the preset's is kept, with a warning that training will resize.
    """
    from training.config import load_config
    from training.prepare import DEFAULT_SIZE

    if config is None:
        if overrides:
            raise InvalidInputError("--set needs --config (the preset whose keys it overrides)")
        return size or DEFAULT_SIZE
    preset = load_config(config, overrides).resolved_input_size()
    if size is not None and size != preset:
        logging.getLogger("training.prepare").warning(
            "crops at %d px, but %s takes %d px: training will resize every crop "
            "(omit --size to prepare at %d px)",
            size,
            config,
            preset,
            preset,
        )
    return size or preset


def prepare_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-prepare",
        description="Sample frames of every video of a dataset, find and crop the faces with the client's "
        "own crop, and write the crops plus a manifest. Re-running resumes; corrupt videos are logged "
        "and skipped.",
    )
    parser.add_argument("--dataset", required=True, choices=DATASETS, help="dataset layout")
    parser.add_argument("root", help="dataset folder")
    parser.add_argument("out", help="crops folder to write (resumed if it exists)")
    parser.add_argument(
        "--config",
        help="training preset (or YAML file) the crops are for: their side is its input size "
        "(default: efficientnet_b0's, 224)",
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a key of --config"
    )
    parser.add_argument(
        "--size", type=int, help="crop side S in pixels (default: the --config preset's input size)"
    )
    parser.add_argument(
        "--margin",
        type=float,
        default=DEFAULT_CROP_MARGIN,
        help=f"crop margin (default {DEFAULT_CROP_MARGIN}); served with the model trained on it",
    )
    parser.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help=f"frames per video (default {DEFAULT_FRAMES})"
    )
    parser.add_argument("--max-faces", type=int, help="keep at most this many faces per frame (default: all)")
    parser.add_argument(
        "--format", default="png", choices=("png", "jpg"), help="crop file format (default png)"
    )
    parser.add_argument("--min-face", type=int, default=24, help="smallest face side in pixels (default 24)")
    parser.add_argument("--workers", type=int, help="parallel processes (default: CPU count)")
    parser.add_argument("--limit", type=int, help="only the first N videos of each split (a quick try)")
    parser.add_argument(
        "--val-fraction", type=float, help="share of groups for validation where the dataset has no split"
    )
    parser.add_argument(
        "--test-fraction", type=float, help="share of groups for test where the dataset has no split"
    )
    parser.add_argument("--compression", default="c23", help="FaceForensics++ compression: raw, c23, c40")
    parser.add_argument("--splits", help="FaceForensics++ folder of train.json, val.json, test.json")
    parser.add_argument(
        "--real-root", help="DeepFake-TIMIT: VidTIMIT's real videos (default: ROOT/VidTIMIT or ../VidTIMIT)"
    )
    _common(parser)
    return parser


def prepare_main(argv: list[str] | None = None, *, parser=None, map_items=None) -> int:
    """``deepfake-prepare``; ``deepfake-bulk prepare`` passes its parser and ``map_items(args)``,
    which gives ``prepare_dataset`` its mapper (see there)."""
    parser = parser or prepare_parser()
    args = parser.parse_args(argv)
    options: dict[str, object] = {}
    if args.val_fraction is not None:
        options["val_fraction"] = args.val_fraction
    if args.test_fraction is not None and args.dataset != "celebdf":
        options["test_fraction"] = args.test_fraction
    if args.dataset == "ffpp":
        options.update(compression=args.compression, splits_dir=args.splits)
    if args.dataset == "timit" and args.real_root:
        options["real_root"] = args.real_root

    def command() -> dict:
        from training.prepare import prepare_dataset

        return prepare_dataset(
            args.dataset,
            args.root,
            args.out,
            size=crop_size(args.config, args.set, args.size),
            margin=args.margin,
            frames=args.frames,
            max_faces=args.max_faces,
            image_format=args.format,
            min_face=args.min_face,
            workers=args.workers,
            limit=args.limit,
            progress=not args.quiet,
            reader_options=options,
            map_items=map_items(args) if map_items else None,
        )

    def show(info: dict) -> None:
        print(
            f"prepared {info['dataset']} from {info['root']} into {args.out}: "
            f"{info['input_size']}x{info['input_size']} crops, margin {info['crop_margin']}, "
            f"{info['frames']} frames/video"
        )
        for split, c in info["counts"].items():
            print(
                f"  {split:5} {c['videos']:6} videos  {c['crops']:7} crops ({c['real_crops']} real, "
                f"{c['fake_crops']} fake)  {c['no_face']} without face  {c['failed']} failed"
            )

    return _run(parser.prog, args, command, show)


# --- deepfake-train ---------------------------------------------------------------------------------


def train_parser() -> argparse.ArgumentParser:
    from training.models import MODEL_NAMES

    parser = argparse.ArgumentParser(
        prog="deepfake-train",
        description="Train a detector on prepared crops. The run folder gets model.keras, run.json "
        "(input size, crop margin, threshold chosen on validation, metrics), config.yaml, history, "
        "checkpoints and plots. "
        "An interrupted run resumes when the same command is run again.",
        epilog=f"models: {', '.join(MODEL_NAMES)}",
    )
    parser.add_argument(
        "--config", default="efficientnet_b0", help="preset name (training/configs/) or YAML file"
    )
    parser.add_argument("--data", required=True, help="crops folder written by deepfake-prepare")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key"
    )
    add_distribute_options(parser)
    _common(parser)
    return parser


def add_distribute_options(parser: argparse.ArgumentParser) -> None:
    """``--distribute`` and ``--cpu-devices`` (deepfake-train, deepfake-tune)."""
    from training.distribute import STRATEGIES

    parser.add_argument(
        "--distribute",
        default="none",
        choices=STRATEGIES,
        help="tf.distribute strategy: none (one device), mirrored (this host's GPUs), multi_worker "
        "(hosts listed in TF_CONFIG; only the chief writes --out). batch_size is the global batch "
        "unless the config sets batch_per_replica: true (then the learning rate is scaled with it)",
    )
    parser.add_argument(
        "--cpu-devices",
        type=int,
        metavar="N",
        help="split the CPU into N logical devices (try --distribute mirrored without GPUs)",
    )


def train_main(argv: list[str] | None = None) -> int:
    """``deepfake-train``."""
    args = train_parser().parse_args(argv)

    def command() -> dict:
        from training.config import load_config
        from training.evaluate import read_run_info
        from training.train import train

        config = load_config(args.config, args.set)
        if config.temporal:  # the frame model, then the temporal head over face tracks
            from training.temporal_train import train_temporal as train  # noqa: F811
        worker = _worker_place(args)
        run_dir = train(
            config, args.data, args.out, verbose=0 if args.quiet else 2, distribute=args.distribute
        )
        if worker is not None:
            return {"run": str(run_dir), "worker": worker}
        return {"run": str(run_dir), **read_run_info(run_dir)}

    def show(run: dict) -> None:
        if "worker" in run:
            print(f"{run['worker']}: trained; the chief writes the run in {run['run']}")
            return
        print(
            f"trained {run['backbone']} ({run['input_size']}x{run['input_size']}) in {run['run']}: "
            f"{run['training']['epochs']} epochs, {run['training']['seconds']} s"
        )
        print(f"  threshold {run['threshold']:.3f} (chosen on validation), crop margin {run['crop_margin']}")
        rows = {
            f"{split} {level}": run["metrics"][split][level]
            for split in run["metrics"]
            for level in ("frame", "video")
        }
        print("\n".join(_metrics_table(rows)))

    return _run("deepfake-train", args, command, show)


def _worker_place(args: argparse.Namespace) -> str | None:
    """Split the CPU if asked (before TensorFlow starts); a non-chief worker's name, else None."""
    import os

    from training.distribute import parse_tf_config, split_cpu

    if args.cpu_devices is not None:
        split_cpu(args.cpu_devices)
    if args.distribute != "multi_worker":
        return None
    cluster = parse_tf_config(os.environ.get("TF_CONFIG"))
    return None if cluster.chief else f"{cluster.task_type} {cluster.task_index}"


# --- deepfake-evaluate ------------------------------------------------------------------------------


def evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-evaluate",
        description="Evaluate a finished run on a split of prepared crops, per frame and per video (scores "
        "aggregated as the client does), at the run's threshold. Writes RUN/eval/NAME/: report.json, "
        "per-video predictions CSV, ROC, PR and calibration plots, training curves with the kept epoch; "
        "with --test-data a cross-dataset table, with --robustness curves under JPEG, downscaling, blur "
        "and noise.",
    )
    parser.add_argument("run", help="run folder written by deepfake-train")
    parser.add_argument("--data", help="crops folder (default: the one the run trained on)")
    parser.add_argument(
        "--split", default="test", choices=("train", "val", "test"), help="split (default test)"
    )
    parser.add_argument("--threshold", type=float, help="decision threshold (default: the run's)")
    parser.add_argument(
        "--aggregate",
        choices=("confident", "mean", "max"),
        help="video score from face scores: confident (DFDC winner), mean (of each frame's highest "
        "face score: SBI, DeepfakeBench) or max (default: the run's)",
    )
    parser.add_argument("--no-plots", action="store_true", help="do not write PNG plots")
    parser.add_argument(
        "--name", help="evaluation folder RUN/eval/NAME/ (default: the split); never the run's own files"
    )
    parser.add_argument(
        "--test-data",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="another prepared crops folder for the cross-dataset table (repeat for each set)",
    )
    parser.add_argument(
        "--robustness",
        nargs="?",
        const="all",
        metavar="KINDS",
        help="robustness curves on --data: all (default) or a comma list of jpeg, downscale, blur, noise",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an earlier evaluation of --name")
    _common(parser)
    return parser


def _test_sets(pairs: list[str]) -> dict[str, str]:
    sets = {}
    for pair in pairs:
        name, sep, folder = pair.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise InvalidInputError(f"--test-data {pair!r}: expected NAME=DIR")
        if name.strip() in sets:
            raise InvalidInputError(f"--test-data: the name {name.strip()!r} is given twice")
        sets[name.strip()] = folder.strip()
    return sets


def evaluate_main(argv: list[str] | None = None) -> int:
    """``deepfake-evaluate``."""
    args = evaluate_parser().parse_args(argv)

    def command() -> dict:
        from training.evaluate import evaluate_run
        from training.robustness import parse_perturbations

        return evaluate_run(
            args.run,
            args.data,
            split=args.split,
            threshold=args.threshold,
            aggregate=args.aggregate,
            plots=not args.no_plots,
            name=args.name,
            test_data=_test_sets(args.test_data),
            robustness=parse_perturbations(args.robustness) if args.robustness else None,
            overwrite=args.overwrite,
        )

    def show(report: dict) -> None:
        print(
            f"{report['run']} on the {report['split']} split of {report['data']} "
            f"(threshold {report['frame']['threshold']:.3f}, "
            f"videos aggregated by {report['video']['aggregate']})"
        )
        print("\n".join(_metrics_table({"frame": report["frame"], "video": report["video"]})))
        print(f"  video score: {report['protocol']['video']}; {report['protocol']['no_face']}")
        if report["video"].get("no_face"):
            print(f"  {report['video']['no_face']} videos without a face (scored 0.5)")
        for source, auc in report.get("by_source", {}).items():
            print(f"  AUC {source:16} frame {_fmt(auc.get('frame_auc'))}  video {_fmt(auc.get('video_auc'))}")
        print(f"  video AP {_fmt(report.get('average_precision'))}  ECE {_fmt(report.get('ece'))}")
        if report.get("cross_dataset"):
            print("  cross-dataset (" + report["cross_dataset_protocol"] + "):")
            print((pathlib.Path(report["eval_dir"]) / "cross_dataset.md").read_text().rstrip())
        for kind, curve in report.get("robustness", {}).items():
            points = "  ".join(f"{r['level']:g}: {_fmt(r['video_auc'])}" for r in curve["levels"])
            print(f"  video AUC under {kind} ({curve['meaning']}): {points}")
        if report.get("temporal"):
            from training.temporal_eval import format_side_by_side

            print("  frame-only vs temporal, video level: " + format_side_by_side(report["temporal"]))
        if report.get("chosen_epoch"):
            print(f"  kept epoch {report['chosen_epoch']} (marked on training_curves.png)")
        print(f"  files in {report['eval_dir']}: {', '.join(report['files'])}")

    return _run("deepfake-evaluate", args, command, show)
