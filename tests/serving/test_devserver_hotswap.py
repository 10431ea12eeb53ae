"""Hot swap under load: versions appear, a corrupt one appears, labels move, a bad config appears,
and not one request fails; every answer comes from a version that was AVAILABLE.

A real server process, real files published by atomic rename, real clients (the official gRPC
stubs and plain HTTP) in threads. The contract test model's logit is ``version + ~0`` for a grey
image, so each answer proves which version computed it.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import time

import numpy as np
import pytest

from tests.serving.load import ThreadedLoad

pytestmark = [pytest.mark.needs_tf, pytest.mark.slow]

MODEL = "deepfake_detector"
S = 32


def write_config(path: pathlib.Path, base: pathlib.Path, versions: list[int], labels: dict[str, int]) -> None:
    policy = " ".join(f"versions: {v}" for v in versions)
    text = [
        f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow"',
        f"  model_version_policy {{ specific {{ {policy} }} }}",
    ]
    text += [f'  version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items()]
    text.append("} }")
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(text) + "\n")
    os.replace(tmp, path)


def publish(source: pathlib.Path, base: pathlib.Path, version: int) -> None:
    staging = base / f".incoming-{version}"
    shutil.copytree(source, staging)
    os.replace(staging, base / str(version))


def status(rest_url: str) -> dict[int, tuple[str, str]]:
    import httpx

    reply = httpx.get(f"{rest_url}/v1/models/{MODEL}", timeout=10).json()
    return {
        int(s["version"]): (s["state"], s["status"]["error_message"]) for s in reply["model_version_status"]
    }


def wait_for(predicate, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached in time")


class Load(ThreadedLoad):
    """Client threads sending Predict until stopped; they record versions and failures."""

    def __init__(self, grpc_target: str, rest_url: str) -> None:
        super().__init__()
        self.grpc_target, self.rest_url = grpc_target, rest_url
        self.answers: list[tuple[str, int, float]] = []  # (channel, version, logit)
        self.failures: list[str] = []
        image = np.full((1, S, S, 3), 128, np.uint8)
        for label in (None, "stable"):
            self.spawn(self._grpc, image, label)
        self.spawn(self._rest, image)

    def _grpc(self, image: np.ndarray, label: str | None) -> None:
        import grpc
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(self.grpc_target))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = MODEL
        if label:
            request.model_spec.version_label = label
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(image))
        while not self.stop.is_set():
            try:
                reply = stub.Predict(request, 20)
                logit = float(tf.make_ndarray(reply.outputs["logit"])[0])
                with self.lock:
                    self.answers.append((f"grpc:{label}", reply.model_spec.version.value, logit))
            except grpc.RpcError as err:
                with self.lock:
                    self.failures.append(f"grpc:{label}: {err.code()} {err.details()}")

    def _rest(self, image: np.ndarray) -> None:
        import httpx

        body = {"inputs": {"images": image.tolist()}}
        with httpx.Client(timeout=20) as client:
            while not self.stop.is_set():
                try:
                    reply = client.post(f"{self.rest_url}/v1/models/{MODEL}/labels/stable:predict", json=body)
                    if reply.status_code != 200:
                        raise RuntimeError(f"{reply.status_code} {reply.text}")
                    logit = reply.json()["outputs"]["logit"][0]
                    with self.lock:
                        self.answers.append(("rest:stable", round(logit), logit))
                except Exception as err:  # noqa: BLE001 - every failure is recorded and fails the test
                    with self.lock:
                        self.failures.append(f"rest: {err}")


@pytest.fixture(scope="module")
def contract_versions(tmp_path_factory):
    from serving.devserver.testmodels import write_contract_model

    root = tmp_path_factory.mktemp("contract")
    return {v: write_contract_model(root / str(v), version=v, input_size=S) for v in (1, 2)}


def test_hot_swap_under_load(tmp_path, contract_versions, devserver_launcher):
    start, stop = devserver_launcher
    base = tmp_path / "models" / MODEL
    base.mkdir(parents=True)
    publish(contract_versions[1], base, 1)
    config = tmp_path / "models" / "models.config"
    write_config(config, base, [1], {"stable": 1})
    server = start(
        tmp_path / "models",
        config,
        tmp_path / "server.log",
        "--allow_version_labels_for_unavailable_models=true",
    )
    try:
        with Load(server.grpc_target, server.rest_url) as load:
            time.sleep(1.0)
            publish(contract_versions[2], base, 2)  # version 2 appears, then is added to the served set
            write_config(config, base, [1, 2], {"stable": 1})
            wait_for(lambda: status(server.rest_url).get(2, ("",))[0] == "AVAILABLE")
            corrupt = base / ".incoming-3"
            corrupt.mkdir()
            (corrupt / "saved_model.pb").write_bytes(b"not a saved model")
            os.replace(corrupt, base / "3")  # a corrupt version 3 appears and is asked for
            write_config(config, base, [1, 2, 3], {"stable": 1})
            wait_for(lambda: status(server.rest_url).get(3, ("",))[0] == "END")
            config.write_text("model_config_list { this is not a config")  # refused; the old one stays
            time.sleep(1.5)
            write_config(config, base, [1, 2], {"stable": 2, "canary": 1})  # labels move
            time.sleep(1.5)
            write_config(config, base, [2], {"stable": 2})  # version 1 retires
            wait_for(lambda: status(server.rest_url)[1][0] == "END")
            time.sleep(1.0)
        states = status(server.rest_url)
        assert states[2][0] == "AVAILABLE" and states[1] == ("END", "")
        assert states[3][0] == "END" and states[3][1]  # the load error is reported
        assert "Failed to read ModelServerConfig file" in server.log()
        assert load.failures == []
        assert len(load.answers) > 50
        for channel, version, logit in load.answers:
            assert version in (1, 2), channel  # never the corrupt version 3
            assert abs(logit - version) < 0.01  # the answer was computed by the version it names
        stable = [v for c, v, _ in load.answers if c == "grpc:stable"]
        assert stable[0] == 1 and stable[-1] == 2  # the label moved under load
        assert [v for c, v, _ in load.answers if c == "grpc:None"][-1] == 2
    finally:
        assert stop(server) == 0  # SIGTERM: graceful exit with code 0
