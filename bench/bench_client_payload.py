"""What 32 face crops cost on the wire: REST uint8 JSON vs base64 JPEG, and gRPC encoding vs TensorFlow.

Crops are 32 real-face crops of 224x224 (the astronaut, cropped per Contract 3 and jittered).
"""

from __future__ import annotations

import time

import numpy as np


def _crops(count: int = 32, size: int = 224) -> np.ndarray:
    from deepfake_client.faces import Box, crop_face
    from training.synthetic import real_face

    face = real_face()
    rng = np.random.default_rng(0)
    return np.stack(
        [
            crop_face(face, Box(50 + rng.uniform(-5, 5), 45 + rng.uniform(-5, 5), 110, 125), 0.3, size)
            for _ in range(count)
        ]
    )


def _best(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def run(quick: bool) -> list[dict]:
    import cv2

    from deepfake_client import contract
    from deepfake_client.transport.base import Target
    from deepfake_client.transport.grpc import make_predict_request
    from deepfake_client.transport.rest import encode_inputs

    crops = _crops()
    repeats = 3 if quick else 10

    def jpeg_body() -> bytes:
        encoded = [
            cv2.imencode(".jpg", cv2.cvtColor(c, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])[
                1
            ].tobytes()
            for c in crops
        ]
        return encode_inputs(contract.ENCODED_SIGNATURE, {contract.IMAGE_BYTES_INPUT: encoded})

    def uint8_body() -> bytes:
        return encode_inputs(contract.DEFAULT_SIGNATURE, {contract.IMAGES_INPUT: crops})

    def ours() -> bytes:
        return make_predict_request(
            Target(version=1), contract.DEFAULT_SIGNATURE, {contract.IMAGES_INPUT: crops}
        ).SerializeToString()

    rows = [
        {
            "name": "REST body, 32 faces, base64 JPEG q95",
            "value": len(jpeg_body()) / 1e6,
            "unit": "MB",
            "baseline": len(uint8_body()) / 1e6,
            "baseline_name": "REST uint8 JSON",
            "goal": "smaller",
        },
        {
            "name": "REST encode time, 32 faces, base64 JPEG q95",
            "value": _best(jpeg_body, repeats),
            "unit": "s",
            "baseline": _best(uint8_body, repeats),
            "baseline_name": "REST uint8 JSON",
            "goal": "report",
        },
    ]
    try:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2
    except ImportError:
        return rows

    def official() -> bytes:
        request = predict_pb2.PredictRequest()
        request.model_spec.name = contract.MODEL_NAME
        request.model_spec.version.value = 1
        request.model_spec.signature_name = contract.DEFAULT_SIGNATURE
        request.inputs[contract.IMAGES_INPUT].CopyFrom(tf.make_tensor_proto(crops))
        return request.SerializeToString()

    official()
    rows.append(
        {
            "name": "gRPC PredictRequest encode, 32 faces uint8",
            "value": _best(ours, repeats),
            "unit": "s",
            "baseline": _best(official, repeats),
            "baseline_name": "tf.make_tensor_proto + official",
            "goal": "<= 1x",
        }
    )
    rows.append(
        {
            "name": "gRPC PredictRequest bytes, 32 faces uint8",
            "value": len(ours()) / 1e6,
            "unit": "MB",
            "baseline": len(official()) / 1e6,
            "baseline_name": "official",
            "goal": "== 1x",
        }
    )
    return rows
