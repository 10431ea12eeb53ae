"""``deepfake-web``: the upload page and HTTP gateway in front of TF Serving.

    deepfake-web --server grpc://localhost:8500 --port 8080

Serves ``/`` (the page), ``POST /v1/scan``, ``GET /healthz`` and ``/openapi.json`` with uvicorn.
Logs go to stderr. Settings also come from the environment (``DEEPFAKE_SERVER``,
``DEEPFAKE_LABEL``), which is how docker compose configures it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deepfake_client.cli import DEFAULT_SERVER
from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error


def build_parser() -> argparse.ArgumentParser:
    from deepfake_client.contract import DEFAULT_DETECTOR

    parser = argparse.ArgumentParser(
        prog="deepfake-web", description="Serve an upload page and a scan API in front of TF Serving."
    )
    parser.add_argument(
        "--server",
        default=os.environ.get("DEEPFAKE_SERVER", DEFAULT_SERVER),
        help="grpc://host:8500 or http://host:8501 (env DEEPFAKE_SERVER)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--model", default=None, help="model name (default: deepfake_detector)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--version", type=int, help="scan with this model version")
    which.add_argument(
        "--label",
        default=os.environ.get("DEEPFAKE_LABEL", "stable"),
        help="scan with the version under this label (default stable; '' for the latest)",
    )
    parser.add_argument(
        "--canary-share", type=float, default=0.0, help="fraction of scans sent to the canary label"
    )
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (MB)")
    parser.add_argument("--concurrency", type=int, default=2, help="scans running at once")
    parser.add_argument("--max-waiting", type=int, default=16, help="further uploads in flight before 503")
    parser.add_argument("--upload-dir", default=None, help="folder for temporary uploads")
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"face detector: centerface, haar or yunet:/model.onnx (default {DEFAULT_DETECTOR})",
    )
    parser.add_argument("--encoding", choices=("uint8", "jpeg"), default="uint8", help="how crops are sent")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call to the model server")
    parser.add_argument("--retries", type=int, default=2, help="retries on an unavailable model server")
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``deepfake-web`` until interrupted; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return _serve(args)
    except DeepfakeError as err:
        return report_error("deepfake-web", err, debug=args.debug)
    except KeyboardInterrupt:
        return 130


def _serve(args: argparse.Namespace) -> int:
    import logging

    try:
        import uvicorn
    except ImportError as err:
        raise DeepfakeError("deepfake-web needs the web extra: pip install 'deepfake-client[web]'") from err

    from deepfake_client.client import DetectorClient
    from deepfake_client.contract import MODEL_NAME
    from deepfake_client.web.app import create_app

    if args.concurrency < 1 or args.max_waiting < 0 or args.max_upload_mb <= 0:
        raise InvalidInputError("--concurrency >= 1, --max-waiting >= 0 and --max-upload-mb > 0 are required")
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from deepfake_client.faces import make_detector

    make_detector(args.detector)  # an unknown name or a missing wheel fails now, not on the first upload
    client = DetectorClient(
        args.server,
        model=args.model or MODEL_NAME,
        version=args.version,
        label=(args.label or None) if args.version is None else None,
        canary_share=args.canary_share,
        timeout_s=args.timeout,
        retries=args.retries,
        frames=args.frames,
        encoding=args.encoding,
        detector=args.detector,
    )
    app = create_app(
        client=client,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_concurrency=args.concurrency,
        max_waiting=args.max_waiting,
        upload_dir=args.upload_dir,
    )
    print(
        f"deepfake-web: http://{args.host}:{args.port}/ -> {args.server} ({client.target.describe()})",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.log_level == "debug",
        timeout_graceful_shutdown=30,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
