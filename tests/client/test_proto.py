"""The client's messages are byte-identical to the official tensorflow-serving-api classes."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client import contract
from deepfake_client._proto import tfs_pb2
from deepfake_client.tensors import make_ndarray
from deepfake_client.transport.base import Target
from deepfake_client.transport.grpc import make_predict_request, parse_metadata

pytestmark = pytest.mark.needs_tf


def _official_request(spec: dict, inputs: dict, output_filter=()):  # type: ignore[no-untyped-def]
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = spec["model"]
    if spec.get("version") is not None:
        request.model_spec.version.value = spec["version"]
    if spec.get("label"):
        request.model_spec.version_label = spec["label"]
    request.model_spec.signature_name = spec["signature"]
    for name, values in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(values))
    request.output_filter.extend(output_filter)
    return request


CASES = {
    "one input, version": (
        dict(version=7, signature=contract.DEFAULT_SIGNATURE),
        {contract.IMAGES_INPUT: np.arange(2 * 8 * 8 * 3, dtype=np.uint8).reshape(2, 8, 8, 3)},
        (),
    ),
    "label, output filter": (
        dict(label="stable", signature=contract.DEFAULT_SIGNATURE),
        {contract.IMAGES_INPUT: np.full((1, 4, 4, 3), 9, np.uint8)},
        (contract.PROBABILITY_OUTPUT,),
    ),
    "bytes, latest": (
        dict(signature=contract.ENCODED_SIGNATURE),
        {contract.IMAGE_BYTES_INPUT: [b"\xff\xd8jpeg", b"\x89PNG"]},
        (),
    ),
    "several inputs": (
        dict(version=3, signature="multi"),
        {
            "a": np.array([1, 2, 3], np.int32),
            "b": np.array([[0.5, 1.5]], np.float32),
            "c": np.array([4], np.int32),
        },
        (contract.LOGIT_OUTPUT, contract.PROBABILITY_OUTPUT),
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_predict_request_bytes_equal_official(case: str) -> None:
    spec, inputs, output_filter = CASES[case]
    target = Target(contract.MODEL_NAME, version=spec.get("version"), label=spec.get("label"))
    ours = make_predict_request(target, spec["signature"], inputs, output_filter)
    official = _official_request({"model": contract.MODEL_NAME, **spec}, inputs, output_filter)
    assert ours.SerializeToString(deterministic=True) == official.SerializeToString(deterministic=True)


def test_official_predict_response_parses() -> None:
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    official = predict_pb2.PredictResponse()
    official.model_spec.name = contract.MODEL_NAME
    official.model_spec.version.value = 12
    official.outputs[contract.PROBABILITY_OUTPUT].CopyFrom(
        tf.make_tensor_proto(np.array([0.25, 0.75], np.float32))
    )
    ours = tfs_pb2.PredictResponse.FromString(official.SerializeToString())
    assert ours.model_spec.version.value == 12
    np.testing.assert_array_equal(make_ndarray(ours.outputs[contract.PROBABILITY_OUTPUT]), [0.25, 0.75])


def test_official_metadata_response_parses() -> None:
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow_serving.apis import get_model_metadata_pb2

    sigmap = get_model_metadata_pb2.SignatureDefMap()
    info = meta_graph_pb2.TensorInfo(name="images:0", dtype=4)
    for size in (-1, 224, 224, 3):
        info.tensor_shape.dim.add().size = size
    sigmap.signature_def[contract.DEFAULT_SIGNATURE].inputs[contract.IMAGES_INPUT].CopyFrom(info)
    official = get_model_metadata_pb2.GetModelMetadataResponse()
    official.model_spec.name = contract.MODEL_NAME
    official.model_spec.version.value = 5
    official.metadata["signature_def"].Pack(sigmap)
    meta = parse_metadata(tfs_pb2.GetModelMetadataResponse.FromString(official.SerializeToString()))
    assert meta.version == 5
    spec = meta.signatures[contract.DEFAULT_SIGNATURE].inputs[contract.IMAGES_INPUT]
    assert (spec.dtype, spec.shape) == ("DT_UINT8", (-1, 224, 224, 3))


def test_client_works_in_a_process_with_tensorflow(fake_serving, face_image) -> None:  # type: ignore[no-untyped-def]
    import tensorflow as tf  # noqa: F401 - the point: TensorFlow's own protos are loaded too

    from deepfake_client import DetectorClient

    with DetectorClient(fake_serving.grpc_url, label="stable") as client:
        verdict = client.scan_image(face_image)
    assert verdict.model_version == 1 and len(verdict.faces) == 1


def test_big_endian_arrays_are_encoded_as_their_values() -> None:
    """TensorProto's tensor_content is little-endian: a big-endian array is converted, not copied raw."""
    from deepfake_client.tensors import make_tensor_proto

    values = np.array([[1.5, -2.25], [3.0, 1e-3]], dtype=np.float32)
    big = values.astype(">f4")
    assert make_tensor_proto(big).SerializeToString() == make_tensor_proto(values).SerializeToString()
    np.testing.assert_array_equal(make_ndarray(make_tensor_proto(big)), values)
