"""``deepfake-web``: the upload page and HTTP gateway in front of TF Serving.

    deepfake-web --server grpc://localhost:8500 --port 8080

Serves ``/`` (the page), ``POST /v1/scan``, ``GET /healthz``, ``GET /metrics`` and
``/openapi.json`` with uvicorn. Logs go to stderr, one JSON object a line (``--log-format text``
for people). Settings also come from the environment (``DEEPFAKE_SERVER``, ``DEEPFAKE_LABEL``,
``DEEPFAKE_WEB_TOKEN_FILE``), which is how docker compose configures it. Without a token (or a
client CA) it listens on loopback only unless ``--insecure`` (see ``auth``).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from deepfake_client.cli import DEFAULT_SERVER
from deepfake_client.errors import DeepfakeError, InvalidInputError, report_error
from deepfake_client.web.auth import TOKEN_ENV
from deepfake_client.web.guard import Limits

# deepfake-scan rides out a server restart for 30 s; behind the gateway a person (or a backend with
# its own timeout) waits for the answer, so the gateway gives up sooner and says 503 (Retry-After).
GATEWAY_RETRY_FOR_S = 5.0


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
        help="scan with the version under this label (default stable, or $DEEPFAKE_LABEL; while the model "
        "has no stable label, the latest version, with a warning)",
    )
    which.add_argument(
        "--latest", action="store_true", help="scan with the latest version, whatever its labels"
    )
    parser.add_argument(
        "--canary-share", type=float, default=0.0, help="fraction of scans sent to the canary label"
    )
    parser.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload accepted (MB)")
    limits = parser.add_argument_group("limits (slow and abusive clients)")
    limits.add_argument(
        "--concurrency", type=int, default=Limits.max_concurrency, help="scans running at once"
    )
    limits.add_argument(
        "--max-waiting", type=int, default=Limits.max_waiting, help="received uploads waiting for a scan"
    )
    limits.add_argument(
        "--max-receiving", type=int, default=Limits.max_receiving, help="uploads being received at once"
    )
    limits.add_argument(
        "--max-per-client",
        type=int,
        default=Limits.max_per_client,
        help="uploads in flight per client address (429 beyond)",
    )
    limits.add_argument(
        "--idle-timeout",
        type=float,
        default=Limits.idle_timeout_s,
        help="seconds of silence from a client before its upload (or connection) is dropped",
    )
    limits.add_argument(
        "--body-timeout",
        type=float,
        default=Limits.body_timeout_s,
        help="seconds to receive a whole upload (408 beyond)",
    )
    parser.add_argument("--upload-dir", default=None, help="folder for temporary uploads")
    parser.add_argument(
        "--device-model",
        help="ONNX export for the page's on-device mode (deepfake-export RUN --format tfjs --out DIR)",
    )
    access = parser.add_argument_group("access")
    access.add_argument(
        "--auth-token-file",
        default=os.environ.get(TOKEN_ENV) or None,
        help=f"require 'Authorization: Bearer <token in this file>' on /v1/* (env {TOKEN_ENV})",
    )
    access.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    access.add_argument("--tls-key", help="the certificate's private key (PEM)")
    access.add_argument("--tls-client-ca", help="require client certificates signed by this CA (mutual TLS)")
    access.add_argument(
        "--insecure", action="store_true", help="allow a non-loopback address without a token or client CA"
    )
    access.add_argument(
        "--forwarded-allow-ips",
        default=None,
        help="proxies whose X-Forwarded-For is trusted for the client address (default: none)",
    )
    parser.add_argument("--frames", type=int, default=32, help="frames sampled per video")
    parser.add_argument(
        "--detector",
        default=DEFAULT_DETECTOR,
        help=f"face detector: centerface, haar or yunet:/model.onnx (default {DEFAULT_DETECTOR})",
    )
    parser.add_argument(
        "--encoding",
        choices=("auto", "uint8", "png", "jpeg"),
        default="auto",
        help="how crops are sent (default auto: the uint8 tensor over gRPC, lossless PNG over REST)",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per call to the model server")
    parser.add_argument(
        "--retry-for",
        type=float,
        default=GATEWAY_RETRY_FOR_S,
        metavar="SECONDS",
        help=f"ride out an unreachable model server (a restart) this long before an upload fails with 503 "
        f"(default {GATEWAY_RETRY_FOR_S:g}: a person is waiting; 0: no waiting)",
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=None,
        help="also cap the retries of one call (default: --retry-for decides)",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    parser.add_argument("--log-format", default="json", choices=("json", "text"), help="stderr log lines")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    return parser


def target_label(args: argparse.Namespace) -> str | None:
    """The label the gateway scans with: stable unless told otherwise (``--latest``, ``--label ''``)."""
    if args.version is not None or args.latest:
        return None
    return args.label or None


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
    import ssl

    try:
        import uvicorn
    except ImportError as err:
        raise DeepfakeError("deepfake-web needs the web extra: pip install 'deepfake-client[web]'") from err

    from deepfake_client.client import DetectorClient
    from deepfake_client.contract import MODEL_NAME
    from deepfake_client.web.app import create_app
    from deepfake_client.web.auth import check_bind, read_token
    from deepfake_client.web.guard import header_timeout_protocol
    from deepfake_client.web.logs import configure_logging

    if args.max_upload_mb <= 0:
        raise InvalidInputError("--max-upload-mb must be > 0")
    try:
        limits = Limits(
            max_concurrency=args.concurrency,
            max_waiting=args.max_waiting,
            max_receiving=args.max_receiving,
            max_per_client=args.max_per_client,
            idle_timeout_s=args.idle_timeout,
            body_timeout_s=args.body_timeout,
        )
    except ValueError as err:
        raise InvalidInputError(str(err)) from err
    if bool(args.tls_cert) != bool(args.tls_key) or (args.tls_client_ca and not args.tls_cert):
        raise InvalidInputError("--tls-cert and --tls-key go together, and --tls-client-ca needs both")
    if args.tls_cert:
        try:  # the files uvicorn will load, checked now so a bad one is one line, not a traceback
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(args.tls_cert, args.tls_key)
            if args.tls_client_ca:
                context.load_verify_locations(args.tls_client_ca)
        except (OSError, ssl.SSLError) as err:
            raise InvalidInputError(f"the TLS files cannot be used: {err}") from err
    token = read_token(args.auth_token_file) if args.auth_token_file else None
    check_bind(args.host, token=token, client_ca=args.tls_client_ca, insecure=args.insecure)
    configure_logging(args.log_level, args.log_format)
    from deepfake_client.faces import make_detector

    make_detector(args.detector)  # an unknown name or a missing wheel fails now, not on the first upload
    client = DetectorClient(
        args.server,
        model=args.model or MODEL_NAME,
        version=args.version,
        label=target_label(args),
        canary_share=args.canary_share,
        timeout_s=args.timeout,
        retry_for_s=args.retry_for,
        retries=args.retries,
        frames=args.frames,
        encoding=args.encoding,
        detector=args.detector,
    )
    app = create_app(
        client=client,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        limits=limits,
        upload_dir=args.upload_dir,
        token=token,
        device_model=args.device_model,
    )
    scheme = "https" if args.tls_cert else "http"
    logging.getLogger("deepfake_client.web").info(
        "deepfake-web: %s://%s:%d/ -> %s (%s)%s",
        scheme,
        args.host,
        args.port,
        args.server,
        client.target.describe(),
        "" if token else " without a token",
    )
    tls = {}
    if args.tls_cert:
        tls = {"ssl_certfile": args.tls_cert, "ssl_keyfile": args.tls_key}
        if args.tls_client_ca:
            tls.update(ssl_ca_certs=args.tls_client_ca, ssl_cert_reqs=ssl.CERT_REQUIRED)
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        http=header_timeout_protocol(limits.idle_timeout_s),
        log_level=args.log_level,
        log_config=None,  # configure_logging's handler (JSON lines) stays
        access_log=False,  # the gateway's middleware writes one access line per request
        proxy_headers=args.forwarded_allow_ips is not None,
        forwarded_allow_ips=args.forwarded_allow_ips,
        # connections beyond this get 503 from uvicorn itself, before any app code runs
        limit_concurrency=4 * limits.files_at_once + 64,
        timeout_graceful_shutdown=30,
        **tls,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
