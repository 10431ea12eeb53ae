"""Dev server throughput and latency (gRPC and REST, batch 1 and 32) vs the same SavedModel in-process.

The model is the contract-shaped test model (uint8 ``[-1, 64, 64, 3]`` in, two float32 outputs).
The server runs in its own process (``python -m serving.devserver``), the client is the project's
TF-free path (``tfs_pb2`` + ``make_tensor_proto`` over a generic gRPC stub; httpx + JSON for REST),
one request at a time. The baseline calls the same signature of the same SavedModel in this process.
Goal: gRPC batch-32 throughput >= 85% of in-process.

Also (issue 15): REST predict of a 32x224x224x3 uint8 batch, row (``instances``) and columnar
(``inputs``) JSON, against the same request over gRPC in the same run, client-side encoding
included on both sides (goal: REST <= 3x gRPC); and Classify / Regress latency (gRPC and REST) on
half_plus_two's serialized-Example signatures, against its Predict.
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


def _serve(tmp: str, name: str, base: pathlib.Path):  # type: ignore[no-untyped-def]
    """A dev server process serving ``base`` as model ``name`` (logs in ``tmp``)."""
    from serving.devserver.launcher import start_devserver

    log = pathlib.Path(tmp) / f"{name}-{base.parent.name}.log"
    args = (f"--model_name={name}", f"--model_base_path={base}")
    return start_devserver(None, log, *args, model=name, labels_at_startup=False, timeout_s=180)


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
    from serving.devserver.launcher import stop_devserver

    version_dir = sorted(base.iterdir(), key=lambda p: p.name)[-1]
    fn = tf.saved_model.load(str(version_dir)).signatures["serving_default"]
    server = _serve(tmp, MODEL, base)
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


def _median_s(call, count: int) -> float:
    return float(np.median(_timed(call, count)))


def _rest_vs_grpc(tmp: str, count: int) -> list[dict]:
    """32x224x224x3 uint8 over REST (row, columnar) and gRPC, one server, one run."""
    import grpc
    import httpx
    import orjson

    from deepfake_client._proto import tfs_pb2
    from deepfake_client.tensors import make_tensor_proto
    from serving.devserver.launcher import stop_devserver
    from serving.devserver.testmodels import write_contract_model

    base = pathlib.Path(tmp) / "big" / MODEL
    write_contract_model(base / "1", version=1, input_size=224)
    server = _serve(tmp, MODEL, base)
    images = np.random.default_rng(0).integers(0, 256, (32, 224, 224, 3), dtype=np.uint8)
    try:
        channel = grpc.insecure_channel(
            server.grpc_target,
            options=[("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)],
        )
        predict = channel.unary_unary(
            "/tensorflow.serving.PredictionService/Predict",
            request_serializer=tfs_pb2.PredictRequest.SerializeToString,
            response_deserializer=tfs_pb2.PredictResponse.FromString,
        )

        def over_grpc() -> None:
            request = tfs_pb2.PredictRequest()
            request.model_spec.name = MODEL
            make_tensor_proto(images, out=request.inputs["images"])
            predict(request, timeout=120)

        rest = httpx.Client(timeout=120)
        url = f"{server.rest_url}/v1/models/{MODEL}:predict"

        def over_rest(key: str) -> None:
            value = images if key == "instances" else {"images": images}
            body = orjson.dumps({key: value}, option=orjson.OPT_SERIALIZE_NUMPY)
            rest.post(url, content=body, headers={"Content-Type": "application/json"}).raise_for_status()

        grpc_s = _median_s(over_grpc, count)
        rows = []
        for key, form in (("instances", "row"), ("inputs", "columnar")):
            rest_s = _median_s(lambda key=key: over_rest(key), count)
            rows.append(
                {
                    "name": f"devserver REST {form} 32x224x224x3 uint8 predict (median)",
                    "value": rest_s * 1e3,
                    "unit": "ms",
                    "baseline": grpc_s * 1e3,
                    "baseline_name": "the same over gRPC",
                    "goal": "<= 3x gRPC",
                }
            )
        rest.close()
        channel.close()
        return rows
    finally:
        stop_devserver(server)


def _example_apis(tmp: str, count: int) -> list[dict]:
    """Classify and Regress latency (one example) over gRPC and REST, against Predict."""
    import grpc
    import httpx
    from tensorflow_serving.apis import (
        classification_pb2,
        predict_pb2,
        prediction_service_pb2_grpc,
        regression_pb2,
    )

    from deepfake_client.tensors import make_tensor_proto
    from serving.devserver.launcher import stop_devserver
    from serving.devserver.testmodels import write_half_plus_two

    base = pathlib.Path(tmp) / "hpt"
    write_half_plus_two(base / "1")
    server = _serve(tmp, "hpt", base)
    try:
        channel = grpc.insecure_channel(server.grpc_target)
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        predict = predict_pb2.PredictRequest()
        predict.model_spec.name = "hpt"
        predict.inputs["x"].ParseFromString(
            make_tensor_proto(np.array([2.0], np.float32)).SerializeToString()
        )
        requests = {}
        for api, cls, signature in (
            ("Classify", classification_pb2.ClassificationRequest, "classify_x_to_y"),
            ("Regress", regression_pb2.RegressionRequest, "regress_x_to_y"),
        ):
            request = cls()
            request.model_spec.name, request.model_spec.signature_name = "hpt", signature
            request.input.example_list.examples.add().features.feature["x"].float_list.value.append(2.0)
            requests[api] = request
        base_s = _median_s(lambda: stub.Predict(predict, 10), count)
        rows = []
        rest = httpx.Client(timeout=30)
        for api, request in requests.items():
            grpc_s = _median_s(lambda api=api, request=request: getattr(stub, api)(request, 10), count)
            body = {"signature_name": request.model_spec.signature_name, "examples": [{"x": 2.0}]}
            url = f"{server.rest_url}/v1/models/hpt:{api.lower()}"
            rest_s = _median_s(lambda url=url, body=body: rest.post(url, json=body).raise_for_status(), count)
            for entry, seconds in (("gRPC", grpc_s), ("REST", rest_s)):
                rows.append(
                    {
                        "name": f"devserver {api} {entry} 1 example (median)",
                        "value": seconds * 1e3,
                        "unit": "ms",
                        "baseline": base_s * 1e3,
                        "baseline_name": "gRPC Predict, 1 value",
                        "goal": "informational",
                    }
                )
        rest.close()
        channel.close()
        return rows
    finally:
        stop_devserver(server)


def run(quick: bool) -> list[dict]:
    """Measure both models; returns the runner's rows."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from serving.devserver.testmodels import write_contract_model

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += _rest_vs_grpc(tmp, 5 if quick else 15)
        rows += _example_apis(tmp, 20 if quick else 100)
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
