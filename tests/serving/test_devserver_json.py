"""The REST JSON codec against TF Serving's json_tensor_test.cc expectations (no server, no TF)."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from deepfake_client._proto import tfs_pb2
from serving.devserver.json_tensor import (
    COLUMNAR,
    ROW,
    format_decimal,
    parse_predict_request,
    render_error,
    render_predict_response,
)
from serving.devserver.status import ServingError


def infos(**dtypes: int):
    table = {name: tfs_pb2.TensorInfo(dtype=dtype) for name, dtype in dtypes.items()}
    return lambda signature: table


def parse(body: str | bytes, **dtypes: int):
    return parse_predict_request(body.encode() if isinstance(body, str) else body, infos(**dtypes))


def error_of(body: str, **dtypes: int) -> str:
    with pytest.raises(ServingError) as caught:
        parse(body, **dtypes)
    assert caught.value.code == "INVALID_ARGUMENT"
    return caught.value.message


def test_row_single_input_batches_instances():
    sig, inputs, fmt = parse('{"instances": [[1, 2], [3, 4], [5, 6]]}', x=tfs_pb2.DT_INT32)
    assert (sig, fmt) == ("", ROW)
    assert inputs["x"].dtype == np.int32 and inputs["x"].tolist() == [[1, 2], [3, 4], [5, 6]]


def test_row_named_inputs_and_b64_strings():
    body = {
        "signature_name": "s",
        "instances": [
            {"a": 1.5, "t": {"b64": base64.b64encode(b"\x00\xff").decode()}},
            {"a": 2, "t": "plain"},
        ],
    }
    sig, inputs, fmt = parse(json.dumps(body), a=tfs_pb2.DT_FLOAT, t=tfs_pb2.DT_STRING)
    assert sig == "s"
    assert inputs["a"].dtype == np.float32 and inputs["a"].tolist() == [1.5, 2.0]
    assert inputs["t"].tolist() == [b"\x00\xff", b"plain"]


def test_columnar_form_keeps_each_input_shape():
    _, inputs, fmt = parse('{"inputs": {"a": [[1.0, 2.0]], "b": 7}}', a=tfs_pb2.DT_FLOAT, b=tfs_pb2.DT_INT64)
    assert fmt == COLUMNAR
    assert inputs["a"].shape == (1, 2) and inputs["b"].shape == () and inputs["b"].dtype == np.int64


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("", "JSON Parse error: The document is empty"),
        ("[1]", "Is not object"),
        ('{"instances": [1], "inputs": [1]}', "expecting only one of 'inputs' or 'instances' keys to exist"),
        ('{"instances": []}', "No values in 'instances' array"),
        ('{"instances": 5}', "Expecting 'instances' to be an list/array"),
        ('{"signature_name": 100, "inputs": [1]}', "'signature_name' key must be a string value."),
        ('{"foo": 1}', "Missing 'inputs' or 'instances' key"),
        ('{"instances": [[1, 2], [3]]}', "Expecting tensor size: 2 but got: 1"),
        ('{"inputs": [[1, 2], [3]]}', "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
        (
            '{"inputs": [[1, 2], 3]}',
            "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2",
        ),
        ('{"inputs": [1.5]}', "JSON Value: 1.5 Type: Number is not of expected type: int32"),
        ('{"inputs": ["a"]}', 'JSON Value: "a" Type: String is not of expected type: int32'),
        ('{"inputs": [true]}', "Type: True is not of expected type: int32"),
        ('{"inputs": [4294967296]}', "is not of expected type: int32"),
        ('{"instances": [{"x": 1}]}', "does not have named input: x"),
    ],
)
def test_bad_requests_get_tf_serving_texts(body, expected):
    assert expected in error_of(body, y=tfs_pb2.DT_INT32)


def test_large_integers_to_float_and_missing_named_input():
    # json_tensor.cc casts any number to float (its precision check was removed upstream in 2021).
    _, inputs, _ = parse('{"inputs": [16777217, 1e39]}', x=tfs_pb2.DT_FLOAT)
    assert (
        inputs["x"].dtype == np.float32
        and inputs["x"][0] == np.float32(16777217)
        and np.isinf(inputs["x"][1])
    )
    message = error_of('{"inputs": {"a": [1.0]}}', a=tfs_pb2.DT_FLOAT, b=tfs_pb2.DT_FLOAT)
    assert message == "Missing named input: b in 'inputs' object."
    message = error_of('{"instances": [1.0, 2.0]}', a=tfs_pb2.DT_FLOAT, b=tfs_pb2.DT_FLOAT)
    assert message.startswith("instances is a plain list, but expecting list of objects")
    assert error_of('{"inputs": [{"b64": "!!"}]}', s=tfs_pb2.DT_STRING) == "Unable to base64 decode"
    assert "not formatted correctly for base64 data" in error_of(
        '{"inputs": [{"x": "1"}]}', s=tfs_pb2.DT_STRING
    )


def test_nan_and_infinity_are_accepted_like_rapidjson():
    _, inputs, _ = parse('{"inputs": [NaN, Infinity, -Infinity]}', x=tfs_pb2.DT_FLOAT)
    assert np.isnan(inputs["x"][0]) and np.isposinf(inputs["x"][1]) and np.isneginf(inputs["x"][2])


def test_responses_rows_columns_bytes_and_decimals():
    outputs = {
        "y": np.array([2.5, 3.0, 0.1], np.float32),
        "z_bytes": np.array([b"\x01", b"\x02", b"\x03"], object),
    }
    rows = json.loads(render_predict_response(outputs, ROW))
    assert rows["predictions"][0] == {"y": 2.5, "z_bytes": {"b64": "AQ=="}}
    assert rows["predictions"][2]["y"] == 0.1  # %g round-trips the float32, no noise digits
    single = render_predict_response({"y": np.array([[1, 2]], np.int32)}, COLUMNAR)
    assert json.loads(single) == {"outputs": [[1, 2]]}
    assert format_decimal(3.0) == "3.0" and format_decimal(float(np.float32(0.2))) == "0.2"
    assert format_decimal(float("nan")) == "NaN" and format_decimal(float("-inf")) == "-Infinity"
    with pytest.raises(ServingError, match="inconsistent batch size"):
        render_predict_response({"a": np.zeros(2), "b": np.zeros(3)}, ROW)
    assert json.loads(render_error('bad "x"')) == {"error": 'bad "x"'}
