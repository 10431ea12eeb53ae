"""TF Serving's example clients (tensorflow_serving/example/) against the dev server, unchanged but
for host and port: the half_plus_two curl of the README, resnet_client.py (REST, image tensor as
JSON), resnet_client_grpc.py (gRPC, ``tf.make_tensor_proto``) and mnist_client.py (concurrent
``Predict.future`` calls, error rate). Their logic is written out here; the models are built by the
test (same signature names, inputs and outputs as the examples'), and the data is generated, not
downloaded.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import subprocess
import threading

import numpy as np
import pytest

pytestmark = [pytest.mark.needs_tf, pytest.mark.slow]


def _resnet(path: pathlib.Path) -> None:
    """``resnet``: input_1 float32 [-1, H, W, 3] -> activation_49 [-1, 1000], class = round(10 * mean)."""
    import tensorflow as tf

    class Resnet(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="input_1")])
        def serve(self, input_1):
            cls = tf.cast(tf.round(10.0 * tf.reduce_mean(input_1, axis=[1, 2, 3])), tf.int32)
            return {"activation_49": tf.one_hot(cls, 1000)}

    module = Resnet()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def _mnist(path: pathlib.Path) -> None:
    """``mnist``: predict_images (images float32 [-1, 784] -> scores [-1, 10]), class = round(sum)."""
    import tensorflow as tf

    class Mnist(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="images")])
        def predict_images(self, images):
            cls = tf.cast(tf.round(tf.reduce_sum(images, axis=1)), tf.int32) % 10
            return {"scores": tf.one_hot(cls, 10)}

    module = Mnist()
    tf.saved_model.save(module, str(path), signatures={"predict_images": module.predict_images})


@pytest.fixture(scope="module")
def examples_server(tmp_path_factory, half_plus_two):
    from serving.devserver.launcher import start_devserver, stop_devserver

    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(half_plus_two, root / "half_plus_two" / "1")
    _resnet(root / "resnet" / "1")
    _mnist(root / "mnist" / "1")
    config = root / "models.config"
    config.write_text(
        "model_config_list {"
        + "".join(
            f' config {{ name: "{name}" base_path: "{root / name}" model_platform: "tensorflow" }}'
            for name in ("half_plus_two", "resnet", "mnist")
        )
        + " }\n"
    )
    server = start_devserver(config, root / "server.log", model="mnist", labels_at_startup=False)
    yield server
    stop_devserver(server)


def test_half_plus_two_curl(examples_server):
    if shutil.which("curl") is None:
        pytest.skip("no curl on this machine")
    out = subprocess.run(
        [
            "curl",
            "-s",
            "-d",
            '{"instances": [1.0, 2.0, 5.0]}',
            "-X",
            "POST",
            f"http://localhost:{examples_server.rest_port}/v1/models/half_plus_two:predict",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert json.loads(out.stdout) == {"predictions": [2.5, 3.0, 4.5]}


def _cat_jpeg(tmp_path: pathlib.Path) -> bytes:
    """A generated 'cat.jpg' (mean 0.3 after /255, so class 3)."""
    from PIL import Image

    pixels = np.full((224, 224, 3), 77, np.uint8)
    path = tmp_path / "cat.jpg"
    Image.fromarray(pixels).save(path, quality=95)
    return path.read_bytes()


def test_resnet_client_rest(examples_server, tmp_path):
    import io

    import requests
    from PIL import Image

    server_url = f"http://localhost:{examples_server.rest_port}/v1/models/resnet:predict"
    content = _cat_jpeg(tmp_path)
    # resnet_client.py, MODEL_ACCEPT_JPG = False
    jpeg_rgb = Image.open(io.BytesIO(content))
    jpeg_rgb = np.expand_dims(np.array(jpeg_rgb) / 255.0, 0).tolist()
    predict_request = json.dumps({"instances": jpeg_rgb})
    for _ in range(3):
        response = requests.post(server_url, data=predict_request)
        response.raise_for_status()
    total_time, num_requests = 0.0, 3
    for _ in range(num_requests):
        response = requests.post(server_url, data=predict_request)
        response.raise_for_status()
        total_time += response.elapsed.total_seconds()
        prediction = response.json()["predictions"][0]
    assert np.argmax(prediction) == 3 and len(prediction) == 1000


def test_resnet_client_grpc(examples_server, tmp_path):
    import io

    import grpc
    import tensorflow as tf
    from PIL import Image
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    data = Image.open(io.BytesIO(_cat_jpeg(tmp_path)))
    data = np.array(data) / 255.0
    data = np.expand_dims(data, 0)
    data = data.astype(np.float32)
    channel = grpc.insecure_channel(f"localhost:{examples_server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "resnet"
    request.model_spec.signature_name = "serving_default"
    request.inputs["input_1"].CopyFrom(tf.make_tensor_proto(data))
    result = stub.Predict(request, 10.0)
    result = result.outputs["activation_49"].float_val
    assert np.argmax(result) == 3
    channel.close()


def test_mnist_client(examples_server):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    rng = np.random.default_rng(0)
    num_tests, concurrency = 40, 4
    labels = rng.integers(0, 10, num_tests)
    images = []
    for label in labels:  # pixels in [0, 1) summing to the label (mod 10)
        image = np.zeros(784, np.float32)
        image[rng.choice(784, int(label), replace=False)] = 1.0
        images.append(image)

    condition = threading.Condition()
    state = {"error": 0, "done": 0, "active": 0}

    def callback(label):
        def _callback(result_future):
            exception = result_future.exception()
            with condition:
                if (
                    exception
                    or np.argmax(np.array(result_future.result().outputs["scores"].float_val)) != label
                ):
                    state["error"] += 1
                state["done"] += 1
                state["active"] -= 1
                condition.notify_all()

        return _callback

    channel = grpc.insecure_channel(f"localhost:{examples_server.grpc_port}")
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    for image, label in zip(images, labels, strict=True):
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "mnist"
        request.model_spec.signature_name = "predict_images"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(image, shape=[1, image.size]))
        with condition:
            condition.wait_for(lambda: state["active"] < concurrency)
            state["active"] += 1
        result_future = stub.Predict.future(request, 5.0)
        result_future.add_done_callback(callback(label))
    with condition:
        assert condition.wait_for(lambda: state["done"] == num_tests, timeout=60)
    assert state["error"] / num_tests == 0.0
    channel.close()
