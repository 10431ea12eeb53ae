"""Dev server throughput and latency (gRPC and REST, batch 1 and 32) vs the same SavedModel in-process.

The model is the contract-shaped test model (uint8 ``[-1, 64, 64, 3]`` in, two float32 outputs).
The server runs in its own process (``python -m serving.devserver``), the client is the project's
TF-free path (``tfs_pb2`` + ``make_tensor_proto`` over a generic gRPC stub; httpx + JSON for REST),
one request at a time. The baseline calls the same signature of the same SavedModel in this process.
Goal: gRPC batch-32 throughput >= 85% of in-process.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
import time

import numpy as np

SIZE = 64
MODEL = "deepfake_detector"


def _timed(call, count: int) -> list[float]:
    for _ in range(3):
        call()  # warm up
    times = []
    for _ in range(count):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times


def _rows(prefix: str, batch: int, times: list[float], base: list[float], goal: str) -> list[dict]:
    throughput = batch * len(times) / sum(times)
    base_throughput = batch * len(base) / sum(base)
    return [
        {
            "name": f"devserver {prefix} b{batch} throughput",
            "value": throughput,
            "unit": "img/s",
            "baseline": base_throughput,
            "baseline_name": f"in-process b{batch}",
            "goal": goal,
        },
        {
            "name": f"devserver {prefix} b{batch} p50 latency",
            "value": float(np.percentile(times, 50)) * 1e3,
            "unit": "ms",
            "baseline": float(np.percentile(base, 50)) * 1e3,
            "baseline_name": f"in-process b{batch} p50",
            "goal": "informational",
        },
        {
            "name": f"devserver {prefix} b{batch} p99 latency",
            "value": float(np.percentile(times, 99)) * 1e3,
            "unit": "ms",
            "baseline": float(np.percentile(base, 99)) * 1e3,
            "baseline_name": f"in-process b{batch} p99",
            "goal": "informational",
        },
    ]


def _measure(label: str, base: pathlib.Path, size: int, count: int, rest_count: int, tmp: str) -> list[dict]:
    import grpc
    import httpx
    import tensorflow as tf

    from deepfake_client._proto import tfs_pb2
    from deepfake_client.tensors import make_ndarray, make_tensor_proto
    from serving.devserver.launcher import start_devserver, stop_devserver

    version_dir = sorted(base.iterdir(), key=lambda p: p.name)[-1]
    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    server = start_devserver(
        None,
        pathlib.Path(tmp) / "server.log",
        f"--model_name={MODEL}",
        f"--model_base_path={base}",
        model=MODEL,
        labels_at_startup=False,
        timeout_s=180,
    )
    grpc_port, rest_port = server.grpc_port, server.rest_port
    rows: list[dict] = []
    try:
        channel = grpc.insecure_channel(
            f"127.0.0.1:{grpc_port}",
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
        )
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=tfs_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfs_pb2.PredictResponse.FromString,
        )
        rest = httpx.Client(timeout=120)
        for batch in (1, 32):
            images = np.random.default_rng(batch).integers(0, 256, (batch, size, size, 3), dtype=np.uint8)

            def in_process(images: np.ndarray = images) -> None:
                fn(images=tf.constant(images))["fake_probability"].numpy()

            def over_grpc(images: np.ndarray = images) -> None:
                request = tfs_pb2.PredictRequest()
                request.model_spec.name = MODEL
                make_tensor_proto(images, out=request.inputs["images"])
                make_ndarray(predict(request, timeout=120).outputs["fake_probability"])

            body = {"instances": images.tolist()}

            def over_rest(body: dict = body) -> None:
                rest.post(
                    f"http://127.0.0.1:{rest_port}/v1/models/{MODEL}:predict", json=body
                ).raise_for_status()

            base_times = _timed(in_process, count)
            rows += _rows(
                f"{label} gRPC",
                batch,
                _timed(over_grpc, count),
                base_times,
                ">= 0.85x in-process" if batch == 32 else "informational",
            )
            if rest_count:
                rows += _rows(
                    f"{label} REST", batch, _timed(over_rest, rest_count), base_times, "informational"
                )
        rest.close()
        channel.close()
    finally:
        stop_devserver(server)
    return rows


def run(quick: bool) -> list[dict]:
    """Measure both models; returns the runner's rows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.devserver.testmodels import write_contract_model

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        # 1. A model that costs almost nothing: the figure is the server's own overhead.
        base = pathlib.Path(tmp) / "tiny" / MODEL
        write_contract_model(base / "1", version=1, input_size=SIZE)
        rows += _measure("mean-pixel model", base, SIZE, 30 if quick else 200, 10 if quick else 50, tmp)
        # 2. The project's default detector (efficientnet_b0, untrained) through the real export path.
        from export.version import export_model
        from training.models import DEFAULT_MODEL, build_model

        repository = pathlib.Path(tmp) / "real"
        result = export_model(build_model(DEFAULT_MODEL), repository, backbone=DEFAULT_MODEL)
        rows += _measure(DEFAULT_MODEL, repository / MODEL, result.input_size, 5 if quick else 20, 0, tmp)
    return rows
