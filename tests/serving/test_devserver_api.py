"""REST and gRPC answers of the dev server, ported from TF Serving's own tests.

Expectations come from http_rest_api_handler_test.cc, json_tensor_test.cc and
tensorflow_model_server_test.py (half_plus_two at version 123). gRPC calls use the official
``tensorflow-serving-api`` stubs, REST plain HTTP (httpx).
"""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

pytestmark = [pytest.mark.needs_tf]

MODEL = "half_plus_two"


@pytest.fixture(scope="module")
def rest(hpt_server):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{hpt_server.rest_port}", timeout=30) as client:
        yield client


@pytest.fixture(scope="module")
def stubs(hpt_server):
    import grpc
    from tensorflow_serving.apis import model_service_pb2_grpc, prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{hpt_server.grpc_port}")
    yield (
        prediction_service_pb2_grpc.PredictionServiceStub(channel),
        model_service_pb2_grpc.ModelServiceStub(channel),
    )
    channel.close()


def test_rest_status_and_metadata(rest):
    status = rest.get(f"/v1/models/{MODEL}")
    assert status.status_code == 200
    assert status.json() == {
        "model_version_status": [
            {"version": "123", "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        ]
    }
    assert rest.get(f"/v1/models/{MODEL}/versions/123").json()["model_version_status"][0]["version"] == "123"
    meta = rest.get(f"/v1/models/{MODEL}/metadata").json()
    assert meta["model_spec"] == {"name": MODEL, "signature_name": "", "version": "123"}
    x = meta["metadata"]["signature_def"]["signature_def"]["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT" and x["tensor_shape"]["dim"][0]["size"] == "-1"


def test_rest_predict_row_and_columnar(rest):
    row = rest.post(f"/v1/models/{MODEL}:predict", json={"instances": [1.0, 2.0, 5.0]})
    assert row.status_code == 200 and row.json() == {"predictions": [2.5, 3.0, 4.5]}
    col = rest.post(f"/v1/models/{MODEL}/versions/123:predict", json={"inputs": [1.0, 2.0, 5.0]})
    assert col.json() == {"outputs": [2.5, 3.0, 4.5]}
    multi = rest.post(
        f"/v1/models/{MODEL}:predict",
        json={
            "signature_name": "multi",
            "instances": [{"a": [1.0, 2.0], "b": 3}, {"a": [0.5, 0.5], "b": -1}],
        },
    )
    assert multi.json() == {"predictions": [{"c": 6.0, "d": 6}, {"c": 0.0, "d": -2}]}
    strings = rest.post(
        f"/v1/models/{MODEL}:predict",
        json={"signature_name": "strings", "inputs": {"text": ["hi", {"b64": "AAE="}]}},
    )
    assert strings.json() == {
        "outputs": {
            "echo": ["hi", "\u0000\u0001"],
            "echo_bytes": [{"b64": "aGk="}, {"b64": "AAE="}],
            "length": [2, 2],
        }
    }


def test_rest_gzip_body(rest):
    body = gzip.compress(json.dumps({"instances": [4.0]}).encode())
    reply = rest.post(
        f"/v1/models/{MODEL}:predict",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert reply.json() == {"predictions": [4.0]}


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        (
            "POST",
            "/v1/models/nope:predict",
            {"instances": [1.0]},
            404,
            "Servable not found for request: Latest(nope)",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}/versions/999:predict",
            {"instances": [1.0]},
            404,
            f"Servable not found for request: Specific({MODEL}, 999)",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}/labels/nope:predict",
            {"instances": [1.0]},
            400,
            "Unrecognized servable version label: nope",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"signature_name": "nope", "instances": [1.0]},
            400,
            'Serving signature name: "nope" not found in signature def',
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"instances": ["a"]},
            400,
            "Failed to process element: 0 of 'instances' list. Error: INVALID_ARGUMENT: "
            'JSON Value: "a" Type: String is not of expected type: float',
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"instances": [{"z": 1.0}]},
            400,
            "does not have named input: z",
        ),
        ("POST", f"/v1/models/{MODEL}:predict", {"instances": []}, 400, "No values in 'instances' array"),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"instances": [1.0], "inputs": [1.0]},
            400,
            "expecting only one of 'inputs' or 'instances' keys to exist",
        ),
        (
            "POST",
            f"/v1/models/{MODEL}:predict",
            {"inputs": [[1.0], [2.0, 3.0]]},
            400,
            "Encountered list at unexpected size",
        ),
        ("POST", "/v1/foo", {}, 400, "Malformed request: POST /v1/foo"),
        ("GET", "/v1/models", None, 400, "Missing model name in request."),
        (
            "GET",
            f"/v1/models/{MODEL}/versions/999",
            None,
            404,
            f"Could not find version 999 of model {MODEL}",
        ),
        ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
        ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ],
)
def test_rest_errors(rest, method, path, body, status, error):
    reply = rest.request(method, path, json=body) if body is not None else rest.request(method, path)
    assert reply.status_code == status
    assert reply.headers["content-type"].startswith("application/json")
    assert error in reply.json()["error"]


def test_rest_malformed_json_and_huge_body(rest):
    reply = rest.post(f"/v1/models/{MODEL}:predict", content=b'{"instances": [1.0,')
    assert reply.status_code == 400 and reply.json()["error"].startswith("JSON Parse error:")
    huge = b'{"instances": [' + b"1.0," * 300_000 + b"1.0]}"  # > the fixture's 1 MiB limit
    assert rest.post(f"/v1/models/{MODEL}:predict", content=huge).status_code == 413
    assert rest.post(f"/v1/models/{MODEL}:predict", json={"instances": [1.0]}).status_code == 200


def test_grpc_official_stubs_predict_and_metadata(stubs):
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2

    predict, _ = stubs
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.array([1.0, 2.0, 5.0], np.float32)))
    response = predict.Predict(request, 10)
    assert (
        response.model_spec.version.value == 123 and response.model_spec.signature_name == "serving_default"
    )
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]), [2.5, 3.0, 4.5])
    meta_request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    meta_request.model_spec.name = MODEL
    meta = predict.GetModelMetadata(meta_request, 10)
    signature_map = get_model_metadata_pb2.SignatureDefMap()
    assert meta.metadata["signature_def"].Unpack(signature_map)  # type_url is TF Serving's
    assert {"serving_default", "multi", "strings"} <= set(signature_map.signature_def)
    assert meta.model_spec.version.value == 123


def test_grpc_error_codes(stubs):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import classification_pb2, predict_pb2

    predict, _ = stubs

    def call(name=MODEL, signature="", alias="x", values=None, version=None):
        values = np.array([1.0], np.float32) if values is None else values
        request = predict_pb2.PredictRequest()
        request.model_spec.name = name
        request.model_spec.signature_name = signature
        if version is not None:
            request.model_spec.version.value = version
        request.inputs[alias].CopyFrom(tf.make_tensor_proto(values))
        with pytest.raises(grpc.RpcError) as caught:
            predict.Predict(request, 10)
        return caught.value.code(), caught.value.details()

    assert call(name="nope") == (grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)")
    assert call(version=9) == (
        grpc.StatusCode.NOT_FOUND,
        f"Servable not found for request: Specific({MODEL}, 9)",
    )
    assert call(signature="nope") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        'Serving signature key "nope" not found.',
    )
    code, details = call(alias="z")
    assert (
        code == grpc.StatusCode.INVALID_ARGUMENT and "input tensor alias not found in signature: z" in details
    )
    assert call(values=np.array([1], np.int32)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Expects arg[0] to be float but int32 is provided",
    )
    with pytest.raises(grpc.RpcError) as caught:
        predict.Classify(classification_pb2.ClassificationRequest(), 10)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )
    with pytest.raises(grpc.RpcError) as caught:
        predict.Predict(predict_pb2.PredictRequest(), 10)
    assert (caught.value.code(), caught.value.details()) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Missing ModelSpec",
    )


def test_grpc_status_health_and_refused_label(stubs, hpt_server):
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from tensorflow_serving.apis import get_model_status_pb2, model_management_pb2

    _, model = stubs
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = MODEL
    status = model.GetModelStatus(status_request, 10)
    assert [(s.version, s.state) for s in status.model_version_status] == [(123, 30)]
    channel = grpc.insecure_channel(f"127.0.0.1:{hpt_server.grpc_port}")
    with pytest.raises(grpc.RpcError) as caught:  # only with --enable_grpc_healthcheck_service
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
    reload_request = model_management_pb2.ReloadConfigRequest()
    config = reload_request.config.model_config_list.config.add()
    config.name, config.base_path, config.model_platform = (
        MODEL,
        str(hpt_server.repository_base),
        "tensorflow",
    )
    config.version_labels["canary"] = 124  # not loaded: TF Serving refuses
    with pytest.raises(grpc.RpcError) as caught:
        model.HandleReloadConfigRequest(reload_request, 10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == (
        f"Request to assign label to version 124 of model {MODEL}, which is not "
        "currently available for inference"
    )
    config.version_labels["canary"] = 123
    assert model.HandleReloadConfigRequest(reload_request, 10).status.error_code == 0
    assert hpt_server.manager.labels(MODEL) == {"canary": 123}


def test_metrics_use_tf_serving_names(rest):
    rest.post(f"/v1/models/{MODEL}:predict", json={"instances": [1.0]})
    text = rest.get("/monitoring/prometheus/metrics").text
    assert f':tensorflow:serving:request_count{{model_name="{MODEL}",status="OK"}}' in text
    assert (
        f':tensorflow:serving:request_latency_count{{model_name="{MODEL}",API="predict",entrypoint="REST"}}'
        in text
    )
