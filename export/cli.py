"""``deepfake-export RUN --repository ./models``: publish a trained run as the next model version."""

from __future__ import annotations

import argparse
import sys

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import DeepfakeError, report_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-export",
        description="Turn a training run into the next version of the model in a TF Serving model "
        "repository: SavedModel with the contract's signatures, warm-up records, model.json, validated, "
        "published atomically. It does not change what is served (see deepfake-rollout).",
    )
    parser.add_argument("run", help="training run folder (model.keras + run.json)")
    parser.add_argument("--repository", required=True, help="model repository (holds <model-name>/<N>/)")
    parser.add_argument(
        "--version", type=int, help="version number (default: highest + 1); refused if it exists"
    )
    parser.add_argument(
        "--model-name", default=MODEL_NAME, help=f"model directory name (default {MODEL_NAME})"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument(
        "--debug", action="store_true", help="show tracebacks and TensorFlow's and native libraries' own logs"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.quiet import quiet_tensorflow

    try:
        with quiet_tensorflow(debug=args.debug):  # before TensorFlow is imported
            from export.version import export_run

            result = export_run(args.run, args.repository, version=args.version, model_name=args.model_name)
    except DeepfakeError as err:
        return report_error("deepfake-export", err, debug=args.debug)
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
    else:
        v = result.validation
        print(f"published {args.model_name} version {result.version} at {result.path}")
        print(
            f"  input {result.input_size}x{result.input_size}, crop margin {result.crop_margin}, "
            f"threshold {result.threshold:.3f}"
        )
        print(
            f"  validated: |saved - keras| = {v['max_abs_diff_keras']:.1e}, |encoded - default| = "
            f"{v['max_abs_diff_encoded']:.1e} (tolerance {v['tolerance']:.0e}), "
            f"{v['warmup_records']} warm-up records replayed"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
