"""Request batching (``--enable_batching``) observed from outside, as TF Serving 2.20 batches.

The probe model's outputs reveal the batch each request ran in (its size after padding, its first
row, the sum of its rows), so merging, splitting, the size limit and padding are seen in the
answers of a real server to real gRPC and REST clients. One batch thread: a ``slow`` request
(4 rows, a full batch, sleeping in the graph) holds it while other requests queue up.
"""

from __future__ import annotations

import pathlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytestmark = [pytest.mark.needs_tf]

MODEL = "probe"
ROOT = pathlib.Path(__file__).resolve().parents[2]
FULL_TEXT = (
    "The batch scheduling queue to which this task was submitted is full; currently 3 batches enqueued "
    "and max_enqueued_batches is 3"
)


def _request(x: np.ndarray, *, signature: str = "", delay_ms: int | None = None, version: int | None = None):
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    if delay_ms is not None:
        request.inputs["delay_ms"].CopyFrom(tf.make_tensor_proto(np.full(len(x), delay_ms, np.int32)))
    return request


def _outputs(reply) -> dict[str, np.ndarray]:
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in reply.outputs.items()}


@pytest.fixture(scope="module")
def batching_server(tmp_path_factory, probe_versions):
    """One batch thread, max_batch_size 4, allowed sizes 2 and 4, 100 ms timeout, 3 batches queued."""
    import shutil

    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    from serving.devserver.batching import BatchingParameters
    from serving.devserver.server import DevServer, ServerOptions

    root = tmp_path_factory.mktemp("batching")
    shutil.copytree(probe_versions[1], root / MODEL / "1")
    params = BatchingParameters(
        max_batch_size=4,
        batch_timeout_micros=100_000,
        num_batch_threads=1,
        max_enqueued_batches=3,
        allowed_batch_sizes=(2, 4),
    )
    server = DevServer(
        ServerOptions(
            port=0, rest_api_port=0, model_name=MODEL, model_base_path=str(root / MODEL), batching=params
        )
    )
    server.start(rest=True)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    server.stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    yield server
    channel.close()
    server.stop(grace_s=5)


def _hold_batch_thread(stub, delay_ms: int) -> threading.Thread:
    """Occupy the only batch thread with a full batch of the ``slow`` signature."""
    thread = threading.Thread(
        target=stub.Predict, args=(_request([0.0] * 4, signature="slow", delay_ms=delay_ms), 30)
    )
    thread.start()
    time.sleep(0.3)  # a full batch is taken at once; give the thread time to start on it
    return thread


def test_parameters_file_parses_like_tf_serving(tmp_path):
    from serving.devserver.batching import read_batching_parameters
    from serving.devserver.status import ServingError

    params = read_batching_parameters(str(ROOT / "serving" / "batching_parameters.txt"))
    assert params.max_batch_size == 64 and params.batch_timeout_micros == 2000
    assert params.allowed_batch_sizes == (1, 8, 32, 64) and not params.pad_variable_length_inputs
    bad = tmp_path / "bad.txt"
    bad.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 4\n")
    with pytest.raises(
        ServingError,
        match="Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8",
    ):
        read_batching_parameters(str(bad))
    bad.write_text("max_batch_size { value: 8 }\nmax_batch_sise { value: 8 }\n")
    with pytest.raises(ServingError, match="Invalid protobuf file"):
        read_batching_parameters(str(bad))
    bad.write_text("max_enqueued_batches { value: 0 }\n")
    assert read_batching_parameters(str(bad)).max_enqueued_batches == 1  # AddQueue's rewrite


def test_concurrent_requests_are_merged_and_split_back(batching_server):
    stub = batching_server.stub
    sizes = [1, 1, 2, 1, 1, 2]
    payloads = [np.arange(n, dtype=np.float32) + 10.0 * (i + 1) for i, n in enumerate(sizes)]
    holder = _hold_batch_thread(stub, delay_ms=800)
    with ThreadPoolExecutor(len(sizes)) as pool:
        replies = list(pool.map(lambda x: _outputs(stub.Predict(_request(x), 30)), payloads))
    holder.join()
    groups: dict[float, list[int]] = {}
    for i, (x, out) in enumerate(zip(payloads, replies, strict=True)):
        np.testing.assert_array_equal(out["echo"], x)  # exactly its own rows, in order
        assert out["version"].tolist() == [1] * len(x)
        groups.setdefault(float(out["batch_first"][0]), []).append(i)
    assert len(groups) < len(sizes)  # requests shared batches
    assert max(len(members) for members in groups.values()) >= 2
    for members in groups.values():
        rows = sum(sizes[i] for i in members)
        size = int(replies[members[0]]["batch_size"][0])
        assert rows <= 4 and size == (2 if rows <= 2 else 4)  # never above max_batch_size; padded up
        padding = size - rows
        extra = float(replies[members[0]]["batch_sum"][0]) - sum(float(payloads[i].sum()) for i in members)
        if padding:  # padding rows repeat the first row of the batch's last request
            assert extra / padding in {float(payloads[i][0]) for i in members}
        else:
            assert extra == 0.0


def test_padding_to_allowed_batch_sizes(batching_server):
    stub = batching_server.stub
    one = _outputs(stub.Predict(_request([5.0]), 30))
    assert one["echo"].tolist() == [5.0] and one["batch_size"].tolist() == [2]
    assert one["batch_sum"].tolist() == [10.0]  # the model ran on [5, 5]; the caller gets one row
    three = _outputs(stub.Predict(_request([1.0, 2.0, 3.0]), 30))
    assert three["echo"].tolist() == [1.0, 2.0, 3.0] and three["batch_size"].tolist() == [4] * 3
    assert three["batch_sum"].tolist() == [7.0] * 3


def test_full_queue_answers_unavailable(batching_server):
    import grpc
    import httpx

    stub = batching_server.stub
    holder = _hold_batch_thread(stub, delay_ms=1500)
    with ThreadPoolExecutor(3) as pool:
        queued = [pool.submit(stub.Predict, _request([float(i)] * 4), 30) for i in range(1, 4)]
        time.sleep(0.3)  # three full batches wait behind the slow one: the queue is full
        with pytest.raises(grpc.RpcError) as refused:
            stub.Predict(_request([9.0]), 30)
        rest = httpx.post(
            f"http://127.0.0.1:{batching_server.rest_port}/v1/models/{MODEL}:predict",
            json={"instances": [9.0]},
            timeout=30,
        )
        answers = [_outputs(f.result()) for f in queued]
    holder.join()
    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    assert refused.value.details() == FULL_TEXT
    assert rest.status_code == 503 and rest.json() == {"error": FULL_TEXT}
    for i, out in enumerate(answers, start=1):  # the queued requests were served, each alone
        assert out["echo"].tolist() == [float(i)] * 4 and out["batch_size"].tolist() == [4] * 4
    after = _outputs(stub.Predict(_request([9.0]), 30))  # the queue drained: accepted again
    assert after["echo"].tolist() == [9.0]


def test_request_larger_than_max_batch_size_is_refused(batching_server):
    import grpc

    with pytest.raises(grpc.RpcError) as refused:
        batching_server.stub.Predict(_request([1.0] * 5), 30)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert refused.value.details() == "Task size 5 is larger than maximum input batch size 4"


@pytest.mark.slow
def test_exported_model_with_the_production_batching_file(tmp_path, exported_version):
    """The real exported model behind the repository's batching_parameters.txt: concurrent callers
    get exactly the scores the SavedModel gives their crops alone."""
    import shutil

    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    from deepfake_client import contract
    from serving.devserver.batching import read_batching_parameters
    from serving.devserver.server import DevServer, ServerOptions

    base = tmp_path / contract.MODEL_NAME
    shutil.copytree(exported_version, base / "1")
    params = read_batching_parameters(str(ROOT / "serving" / "batching_parameters.txt"))
    server = DevServer(
        ServerOptions(port=0, model_name=contract.MODEL_NAME, model_base_path=str(base), batching=params)
    )
    server.start()
    try:
        signature = tf.saved_model.load(str(exported_version)).signatures[contract.DEFAULT_SIGNATURE]
        size = signature.structured_input_signature[1][contract.IMAGES_INPUT].shape[1]
        rng = np.random.default_rng(0)
        crops = [rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8) for n in (1, 3, 2, 5, 1, 4, 2, 3)]
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
        )

        def predict(images: np.ndarray) -> np.ndarray:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = contract.MODEL_NAME
            request.inputs[contract.IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(images))
            reply = stub.Predict(request, 60)
            return tf.make_ndarray(reply.outputs[contract.PROBABILITY_OUTPUT])

        with ThreadPoolExecutor(len(crops)) as pool:
            served = list(pool.map(predict, crops))
        for images, probabilities in zip(crops, served, strict=True):
            alone = signature(**{contract.IMAGES_INPUT: tf.constant(images)})[contract.PROBABILITY_OUTPUT]
            np.testing.assert_allclose(probabilities, alone.numpy(), atol=1e-5)
    finally:
        server.stop(grace_s=5)


def test_cli_refuses_invalid_batching_parameters(tmp_path, capsys):
    from serving.devserver.cli import main

    bad = tmp_path / "batching.txt"
    bad.write_text("max_batch_size { value: 8 }\nallowed_batch_sizes: 2\nallowed_batch_sizes: 4\n")
    argv = [
        "--port=1",  # never bound: the parameters are refused first
        "--model_base_path=/nonexistent",
        "--enable_batching",
        f"--batching_parameters_file={bad}",
    ]
    assert main(argv) == 2  # invalid input (Contract 5)
    assert capsys.readouterr().err.strip() == (
        "error: Last entry in allowed_batch_sizes must match max_batch_size; last entry was 4; expected 8"
    )
