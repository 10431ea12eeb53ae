"""The session `devserver` fixture serves the version the real export path produced."""

from __future__ import annotations

import numpy as np
import pytest

from deepfake_client import contract

pytestmark = [pytest.mark.needs_tf, pytest.mark.slow]


def test_devserver_serves_the_exported_contract_model(devserver):
    import grpc
    import httpx
    import tensorflow as tf
    from tensorflow_serving.apis import get_model_metadata_pb2, predict_pb2, prediction_service_pb2_grpc

    assert devserver.grpc_url.startswith("grpc://127.0.0.1:") and devserver.config_path.is_file()
    status = httpx.get(f"{devserver.rest_url}/v1/models/{contract.MODEL_NAME}", timeout=10).json()
    assert status["model_version_status"][0]["state"] == "AVAILABLE"
    meta = httpx.get(
        f"{devserver.rest_url}/v1/models/{contract.MODEL_NAME}/labels/{contract.STABLE_LABEL}/metadata",
        timeout=10,
    ).json()
    assert meta["model_spec"]["version"] == "1"  # the metadata endpoint resolves labels
    signatures = meta["metadata"]["signature_def"]["signature_def"]
    assert {contract.DEFAULT_SIGNATURE, contract.ENCODED_SIGNATURE, contract.INFO_SIGNATURE} <= set(
        signatures
    )
    size = int(
        signatures[contract.DEFAULT_SIGNATURE]["inputs"][contract.IMAGES_INPUT]["tensor_shape"]["dim"][1][
            "size"
        ]
    )

    stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(devserver.grpc_url[7:]))
    info = predict_pb2.PredictRequest()
    info.model_spec.name, info.model_spec.signature_name = contract.MODEL_NAME, contract.INFO_SIGNATURE
    info.inputs[contract.INFO_INPUT].CopyFrom(tf.make_tensor_proto(np.zeros(1, np.int32)))
    reply = stub.Predict(info, 30)
    assert int(tf.make_ndarray(reply.outputs[contract.INFO_INPUT_SIZE])[0]) == size
    assert 0.0 < float(tf.make_ndarray(reply.outputs[contract.INFO_THRESHOLD])[0]) < 1.0

    images = np.random.default_rng(0).integers(0, 256, (3, size, size, 3), dtype=np.uint8)
    request = predict_pb2.PredictRequest()
    request.model_spec.name = contract.MODEL_NAME
    request.model_spec.version_label = contract.STABLE_LABEL
    request.inputs[contract.IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(images))
    reply = stub.Predict(request, 30)
    assert reply.model_spec.version.value == 1
    grpc_probs = tf.make_ndarray(reply.outputs[contract.PROBABILITY_OUTPUT])
    rest = httpx.post(
        f"{devserver.rest_url}/v1/models/{contract.MODEL_NAME}/versions/1:predict",
        json={"instances": images.tolist()},
        timeout=30,
    ).json()
    rest_probs = [row[contract.PROBABILITY_OUTPUT] for row in rest["predictions"]]
    np.testing.assert_allclose(rest_probs, grpc_probs, rtol=1e-6)  # both front ends, one model
    assert ((grpc_probs >= 0) & (grpc_probs <= 1)).all()
    request_meta = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request_meta.model_spec.name = contract.MODEL_NAME
    assert stub.GetModelMetadata(request_meta, 30).model_spec.version.value == 1
