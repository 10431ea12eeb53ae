"""Classify, Regress and MultiInference against TF Serving's own expectations.

Ported from tensorflow_model_server_test.py (testClassify, testRegress, testMultiInference and
their REST twins), http_rest_api_handler_test.cc (regress/classify answers), classifier_test.cc
and regressor_test.cc (signature and output checks, with their texts). half_plus_two is rebuilt by
``testmodels.write_half_plus_two`` with TF Serving's serialized-Example signatures; calls use the
official ``tensorflow-serving-api`` client.
"""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client._proto import tfs_pb2
from serving.devserver.classify import (
    check_classification_signature,
    check_regression_signature,
    fill_classification_result,
    fill_regression_result,
    serialized_examples,
)
from serving.devserver.status import ServingError

pytestmark = [pytest.mark.needs_tf]

MODEL = "half_plus_two"


@pytest.fixture(scope="module")
def stub(hpt_server):
    import grpc
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(f"127.0.0.1:{hpt_server.grpc_port}")
    yield prediction_service_pb2_grpc.PredictionServiceStub(channel)
    channel.close()


@pytest.fixture(scope="module")
def rest(hpt_server):
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{hpt_server.rest_port}", timeout=30) as client:
        yield client


def _request(cls, signature: str, *xs: float):
    request = cls()
    request.model_spec.name = MODEL
    request.model_spec.signature_name = signature
    for x in xs:
        request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([x])
    return request


def test_grpc_classify_regress_multi_inference(stub):
    from tensorflow_serving.apis import classification_pb2, inference_pb2, regression_pb2

    result = stub.Classify(_request(classification_pb2.ClassificationRequest, "classify_x_to_y", 2.0), 10)
    assert [[c.score for c in cl.classes] for cl in result.result.classifications] == [[3.0]]
    assert (result.model_spec.name, result.model_spec.signature_name, result.model_spec.version.value) == (
        MODEL,
        "classify_x_to_y",
        123,
    )
    result = stub.Regress(_request(regression_pb2.RegressionRequest, "regress_x_to_y", 2.0, 80.0), 10)
    assert [r.value for r in result.result.regressions] == [3.0, 42.0]
    labelled = stub.Classify(_request(classification_pb2.ClassificationRequest, "classify_classes", 0.0), 10)
    assert [(c.label, c.score) for c in labelled.result.classifications[0].classes] == [
        ("low", 0.5),
        ("high", 0.5),
    ]

    request = inference_pb2.MultiInferenceRequest()
    for signature, method in (
        ("regress_x_to_y", "tensorflow/serving/regress"),
        ("classify_x_to_y", "tensorflow/serving/classify"),
    ):
        task = request.tasks.add()
        task.model_spec.name, task.model_spec.signature_name, task.method_name = MODEL, signature, method
    request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([2.0])
    response = stub.MultiInference(request, 10)
    assert response.results[0].regression_result.regressions[0].value == 3.0
    assert response.results[1].classification_result.classifications[0].classes[0].score == 3.0
    assert [r.model_spec.signature_name for r in response.results] == ["regress_x_to_y", "classify_x_to_y"]
    assert all(r.model_spec.version.value == 123 for r in response.results)


def test_grpc_context_is_merged_into_every_example(stub):
    from tensorflow_serving.apis import regression_pb2

    request = regression_pb2.RegressionRequest()
    request.model_spec.name, request.model_spec.signature_name = MODEL, "regress_x_to_y2"
    both = request.input.example_list_with_context
    both.context.features.feature["x"].float_list.value.extend([10.0])  # examples without x take it
    both.examples.add()
    both.examples.add().features.feature["x"].float_list.value.extend([4.0])
    assert [r.value for r in stub.Regress(request, 10).result.regressions] == [8.0, 5.0]


@pytest.mark.parametrize(
    ("call", "signature", "examples", "code", "details"),
    [
        ("Classify", "nope", 1, "INVALID_ARGUMENT", "No signature was found with the name: nope"),
        ("Regress", "regress_x_to_y", 0, "INVALID_ARGUMENT", "Input is empty."),
        (
            "Classify",
            "serving_default",
            1,
            "INVALID_ARGUMENT",
            "No classification inputs found in SignatureDef",
        ),
        ("Regress", "classify_classes", 1, "INVALID_ARGUMENT", "Expected one output Tensor."),
        ("Regress", "classify_x_to_y", 1, "INVALID_ARGUMENT", "No regression outputs found in SignatureDef"),
    ],
)
def test_grpc_example_api_errors(stub, call, signature, examples, code, details):
    import grpc
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    cls = classification_pb2.ClassificationRequest if call == "Classify" else regression_pb2.RegressionRequest
    with pytest.raises(grpc.RpcError) as caught:
        getattr(stub, call)(_request(cls, signature, *[1.0] * examples), 10)
    assert caught.value.code() == getattr(grpc.StatusCode, code)
    assert caught.value.details().startswith(details)


def test_multi_inference_checks(stub):
    import grpc
    from tensorflow_serving.apis import inference_pb2

    def call(*tasks):
        request = inference_pb2.MultiInferenceRequest()
        for name, signature, method in tasks:
            task = request.tasks.add()
            task.model_spec.name, task.model_spec.signature_name, task.method_name = name, signature, method
        request.input.example_list.examples.add().features.feature["x"].float_list.value.extend([1.0])
        with pytest.raises(grpc.RpcError) as caught:
            stub.MultiInference(request, 10)
        return caught.value.code(), caught.value.details()

    regress = "tensorflow/serving/regress"
    assert call((MODEL, "regress_x_to_y", regress), (MODEL, "regress_x_to_y", regress)) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "Duplicate evaluation of signature: regress_x_to_y",
    )
    assert call((MODEL, "regress_x_to_y", regress), ("other", "regress_x_to_y2", regress))[1] == (
        "All ModelSpecs in a MultiInferenceRequest must access the same model name."
    )
    assert call((MODEL, "regress_x_to_y", "tensorflow/serving/predict")) == (
        grpc.StatusCode.UNIMPLEMENTED,
        "Unsupported signature method_name: tensorflow/serving/predict",
    )
    assert call((MODEL, "nope", regress))[1] == "Requested signature not found in model graph: nope"


def test_rest_classify_and_regress(rest):
    # tensorflow_model_server_test.py's testClassifyREST / testRegressREST and the handler test.
    reply = rest.post(
        f"/v1/models/{MODEL}:classify", json={"signature_name": "classify_x_to_y", "examples": [{"x": 2.0}]}
    )
    assert reply.status_code == 200 and reply.json() == {"results": [[["", 3.0]]]}
    reply = rest.post(
        f"/v1/models/{MODEL}/versions/123:regress",
        json={"signature_name": "regress_x_to_y", "examples": [{"x": 80.0}]},
    )
    assert reply.json() == {"results": [42.0]}
    reply = rest.post(
        f"/v1/models/{MODEL}:regress",
        json={"signature_name": "regress_x_to_y2", "context": {"x": 10.0}, "examples": [{}, {"x": [4.0]}]},
    )
    assert reply.json() == {"results": [8.0, 5.0]}
    reply = rest.post(
        f"/v1/models/{MODEL}:classify", json={"signature_name": "classify_classes", "examples": [{"x": 0}]}
    )
    # x sent as a JSON integer is an int64 feature, which the float feature spec refuses at run time
    assert reply.status_code == 400
    reply = rest.post(
        f"/v1/models/{MODEL}:classify", json={"signature_name": "classify_classes", "examples": [{"x": 0.0}]}
    )
    assert reply.json() == {"results": [[["low", 0.5], ["high", 0.5]]]}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"signature_name": "regress_x_to_y"},
            "When method is classify, key 'examples' is expected and was not found",
        ),
        ({"examples": {"x": 1.0}}, "Expecting 'examples' value to be an list/array"),
        ({"examples": []}, "'examples' value is an empty array"),
        ({"examples": [1.0]}, "Example must be JSON object but got JSON Number"),
        ({"examples": [{"x": [1.0, "a"]}]}, "Unexpected element type in feature: x expecting type: float"),
        ({"examples": [{"x": None}]}, "Feature: x has element with unexpected JSON type: Null"),
        ({"examples": [{"x": [[1.0]]}]}, "Feature: x has element with unexpected JSON type: Array"),
        ({"examples": [{"x": 18446744073709551615}]}, "has uint64_t element. Only int64_t is supported."),
        ({"signature_name": 5, "examples": [{"x": 1.0}]}, "'signature_name' key must be a string value."),
    ],
)
def test_rest_example_json_errors(rest, body, error):
    reply = rest.post(f"/v1/models/{MODEL}:regress", json=body)
    assert reply.status_code == 400 and error in reply.json()["error"]


def test_example_features_from_json():
    from tensorflow_serving.apis import classification_pb2

    from serving.devserver.json_example import fill_request_from_json

    request = classification_pb2.ClassificationRequest()
    body = b'{"examples": [{"f": 1.5, "i": [1, true], "s": "t", "b": {"b64": "AAE="}}], "context": {"c": 2}}'
    fill_request_from_json(body, request)
    features = request.input.example_list_with_context.examples[0].features.feature
    assert list(features["f"].float_list.value) == [1.5] and list(features["i"].int64_list.value) == [1, 1]
    assert list(features["s"].bytes_list.value) == [b"t"] and list(features["b"].bytes_list.value) == [
        b"\x00\x01"
    ]
    assert list(request.input.example_list_with_context.context.features.feature["c"].int64_list.value) == [2]


def _signature(inputs: dict, outputs: dict, method: str = "") -> tfs_pb2.SignatureDef:
    sig = tfs_pb2.SignatureDef(method_name=method)
    for name, dtype in inputs.items():
        sig.inputs[name].dtype = dtype
    for name, dtype in outputs.items():
        sig.outputs[name].dtype = dtype
    return sig


def test_signature_checks_of_classifier_and_regressor_tests():
    # classifier_test.cc / regressor_test.cc: which signatures are refused, with which text.
    s, f = tfs_pb2.DT_STRING, tfs_pb2.DT_FLOAT
    assert check_classification_signature(_signature({"inputs": s}, {"classes": s, "scores": f})) == (
        "classes",
        "scores",
    )
    cases = [
        (
            check_classification_signature,
            _signature({"inputs": s, "x": s}, {"scores": f}),
            "Expected one input Tensor.",
        ),
        (
            check_classification_signature,
            _signature({"inputs": s}, {"a": f, "b": f, "c": f}),
            "Expected one or two output Tensors, found 3",
        ),
        (
            check_classification_signature,
            _signature({"inputs": s}, {"a": f}),
            "Expected classification signature outputs",
        ),
        (
            check_regression_signature,
            _signature({"inputs": s}, {"a": f, "b": f}),
            "Expected one output Tensor.",
        ),
        (
            check_regression_signature,
            _signature({"x": s}, {"outputs": f}),
            "No regression inputs found in SignatureDef",
        ),
    ]
    for check, sig, text in cases:
        with pytest.raises(ServingError) as caught:
            check(sig)
        assert caught.value.message.startswith(text)
    with pytest.raises(
        ServingError, match="Expected regression signature method_name to be tensorflow/serving/regress"
    ):
        check_regression_signature(_signature({"inputs": s}, {"outputs": f}, "x"), method_check=True)


def test_result_checks_of_classifier_and_regressor_tests():
    from tensorflow_serving.apis import classification_pb2, regression_pb2

    def classify(outputs, n=2):
        fill_classification_result(outputs, n, classification_pb2.ClassificationResult())

    def regress(outputs, n=2):
        fill_regression_result(outputs, n, regression_pb2.RegressionResult())

    classes = np.array([["a", "b"], ["c", "d"]], object)
    cases = [
        (
            classify,
            {"scores": np.zeros((2,), np.float32)},
            "Expected Tensor shape: [batch_size num_classes] but got [2]",
        ),
        (
            classify,
            {"scores": np.zeros((2, 2), np.float64)},
            "Expected scores Tensor of DT_FLOAT. Got: DT_DOUBLE",
        ),
        (
            classify,
            {"scores": np.zeros((3, 2), np.float32)},
            "Expected scores output batch size of 2. Got: 3",
        ),
        (
            classify,
            {"classes": classes, "scores": np.zeros((2, 3), np.float32)},
            "Tensors class and score should match in dim_size(1). Got 2 vs. 3",
        ),
        (
            regress,
            {"outputs": np.zeros((2, 2), np.float32)},
            "Expected output Tensor shape to be either [batch_size] or",
        ),
        (
            regress,
            {"outputs": np.zeros((3,), np.float32)},
            "Input batch size did not match output batch size: 2 vs. 3",
        ),
        (
            regress,
            {"outputs": np.zeros((2,), np.int32)},
            "Expected output Tensor of DT_FLOAT.  Got: DT_INT32",
        ),
    ]
    for fill, outputs, text in cases:
        with pytest.raises(ServingError) as caught:
            fill(outputs)
        assert caught.value.message.startswith(text), caught.value.message


def test_serialized_examples_concatenate_context():
    from tensorflow_serving.apis import input_pb2

    value = input_pb2.Input()
    both = value.example_list_with_context
    both.context.features.feature["c"].int64_list.value.append(1)
    both.examples.add().features.feature["x"].float_list.value.append(2.0)
    (serialized,) = serialized_examples(value)
    assert serialized == both.context.SerializeToString() + both.examples[0].SerializeToString()
    with pytest.raises(ServingError, match="Input is empty."):
        serialized_examples(input_pb2.Input())
