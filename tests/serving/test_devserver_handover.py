"""Retiring a version while a request is in flight on it: the request finishes on that version, and
the version is reported UNLOADING until then and END only afterwards (TF Serving's quiescing).

The probe model's ``slow`` signature sleeps inside the graph, so a request stays in flight on
version 1 for a known time while ReloadConfig (over gRPC) retires version 1 in favour of 2.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

pytestmark = [pytest.mark.needs_tf]

MODEL = "probe"
DELAY_S = 1.5


def _config(base: str, versions: list[int]):
    from tensorflow_serving.config import model_server_config_pb2

    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name=MODEL, base_path=base, model_platform="tensorflow")
    model.model_version_policy.specific.versions.extend(versions)
    return config


@pytest.mark.parametrize("batching", [False, True], ids=["plain", "batching"])
def test_retired_version_finishes_its_in_flight_request(serve_inprocess, probe_versions, batching):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import (
        get_model_status_pb2,
        model_management_pb2,
        model_service_pb2_grpc,
        predict_pb2,
        prediction_service_pb2_grpc,
    )

    from serving.devserver.batching import BatchingParameters

    params = BatchingParameters(max_batch_size=8, batch_timeout_micros=1000, num_batch_threads=1)
    server = serve_inprocess(MODEL, probe_versions, batching=params if batching else None)
    channel = grpc.insecure_channel(f"127.0.0.1:{server.grpc_port}")
    predictions = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    models = model_service_pb2_grpc.ModelServiceStub(channel)

    def request(version: int | None, signature: str = "", delay_ms: int | None = None):
        message = predict_pb2.PredictRequest()
        message.model_spec.name = MODEL
        message.model_spec.signature_name = signature
        if version is not None:
            message.model_spec.version.value = version
        message.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([7.0], np.float32)))
        if delay_ms is not None:
            message.inputs["delay_ms"].CopyFrom(tf.make_tensor_proto(np.array([delay_ms], np.int32)))
        return message

    def state_of_1() -> str:
        status_request = get_model_status_pb2.GetModelStatusRequest()
        status_request.model_spec.name = MODEL
        status_request.model_spec.version.value = 1
        reply = models.GetModelStatus(status_request, 10)
        return get_model_status_pb2.ModelVersionStatus.State.Name(reply.model_version_status[0].state)

    assert state_of_1() == "AVAILABLE"
    slow: dict = {}

    def call_slow() -> None:
        slow["sent"] = time.monotonic()
        slow["reply"] = predictions.Predict(request(1, "slow", int(DELAY_S * 1000)), 30)
        slow["done"] = time.monotonic()

    thread = threading.Thread(target=call_slow)
    thread.start()
    time.sleep(0.3)  # the request is running on version 1
    reload = model_management_pb2.ReloadConfigRequest()
    reload.config.CopyFrom(_config(str(server.base_path), [2]))  # version 1 retires
    assert models.HandleReloadConfigRequest(reload, 10).status.error_code == 0
    observed: list[tuple[float, str]] = []
    while thread.is_alive() or not observed or observed[-1][1] != "END":
        observed.append((time.monotonic(), state_of_1()))
        if observed[0][0] - slow["sent"] > 10 + DELAY_S:
            break
        if len(observed) == 1:  # while it drains, new requests for version 1 are refused
            with pytest.raises(grpc.RpcError) as refused:
                predictions.Predict(request(1), 10)
            assert refused.value.code() == grpc.StatusCode.NOT_FOUND
            assert refused.value.details() == f"Servable not found for request: Specific({MODEL}, 1)"
            assert predictions.Predict(request(None), 10).model_spec.version.value == 2
        time.sleep(0.02)
    thread.join(10)
    reply = slow["reply"]
    assert reply.model_spec.version.value == 1  # the request finished on the retired version
    assert tf.make_ndarray(reply.outputs["version"]).tolist() == [1]
    assert tf.make_ndarray(reply.outputs["echo"]).tolist() == [7.0]
    assert slow["done"] - slow["sent"] >= DELAY_S
    states = [state for _, state in observed]
    assert states[0] == "UNLOADING" and states[-1] == "END"
    assert states == sorted(states, key=["UNLOADING", "END"].index)  # never back
    first_end = next(t for t, state in observed if state == "END")
    assert first_end >= slow["sent"] + DELAY_S  # END only once the request had run its course
    assert all(state == "UNLOADING" for t, state in observed if t < slow["sent"] + DELAY_S)
    channel.close()
