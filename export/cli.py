"""``deepfake-export RUN --repository ./models``: publish a trained run as the next model version.

``--format tflite|onnx|tfjs --out DIR`` writes an edge export instead (``export.formats``).
"""

from __future__ import annotations

import argparse
import sys

from deepfake_client.contract import MODEL_NAME
from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error
from export.formats import FORMATS, QUANTIZE


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepfake-export",
        description="Turn a training run into the next version of the model in a TF Serving model "
        "repository: SavedModel with the contract's signatures, warm-up records, model.json, validated, "
        "published atomically. It does not change what is served (see deepfake-rollout). With --format "
        "tflite, onnx or tfjs it writes an edge export into --out instead: the model file, model.json "
        "(input size, crop margin, threshold) and parity.json (the check against the SavedModel).",
    )
    parser.add_argument("run", help="training run folder (model.keras + run.json)")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default="savedmodel",
        help="savedmodel (default: a version in --repository), tflite (LiteRT), onnx (ONNX Runtime) or "
        "tfjs (the browser: ONNX for onnxruntime-web, as tensorflowjs does not install beside this "
        "TensorFlow)",
    )
    parser.add_argument("--repository", help="model repository (holds <model-name>/<N>/); savedmodel only")
    parser.add_argument("--out", help="new or empty folder for an edge export (tflite, onnx, tfjs)")
    parser.add_argument(
        "--quantize",
        choices=QUANTIZE,
        help="tflite only: float16 weights, or int8 calibrated on the run's training crops",
    )
    parser.add_argument(
        "--data", help="edge formats: the run's prepared crops (default: the folder it was trained on)"
    )
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


def check_args(args: argparse.Namespace) -> None:
    """The options that go together, per format (``InvalidInputError`` otherwise)."""
    if args.format == "savedmodel":
        if not args.repository or args.out or args.quantize or args.data:
            raise InvalidInputError(
                "--format savedmodel publishes into --repository (--out, --quantize and --data are for "
                "the edge formats)"
            )
    elif not args.out or args.repository:
        raise InvalidInputError(f"--format {args.format} writes into --out DIR (not --repository)")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from training.quiet import quiet_tensorflow

    try:
        check_args(args)
        with quiet_tensorflow(debug=args.debug):  # before TensorFlow is imported
            if args.format != "savedmodel":
                return edge_main(args)
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


def edge_main(args: argparse.Namespace) -> int:
    """``--format tflite|onnx|tfjs``: export, check, print the parity report."""
    from export.formats.edge import export_edge
    from export.formats.parity import format_report

    result = export_edge(
        args.run,
        args.format,
        args.out,
        quantize=args.quantize,
        data_dir=args.data,
        version=args.version,
        model_name=args.model_name,
    )
    if args.json:
        import orjson

        sys.stdout.write(orjson.dumps(result.as_dict()).decode() + "\n")
        return 0
    facts = result.facts
    quantized = f" ({facts['quantize']})" if facts["quantize"] else ""
    print(f"wrote {args.format}{quantized} {result.file} for {facts['runtime']}")
    print(
        f"  input {facts['input_size']}x{facts['input_size']}, crop margin {facts['crop_margin']}, "
        f"threshold {facts['threshold']:.3f} (model.json)"
    )
    print(format_report(result.parity))
    return 0


if __name__ == "__main__":
    sys.exit(main())
