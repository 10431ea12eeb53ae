"""Warm-up records: ``assets.extra/tf_serving_warmup_requests``.

TF Serving replays these ``PredictionLog`` records when it loads a version, before it marks the
version AVAILABLE, so the first real request does not pay for graph optimisation and memory
allocation. The records cover both image signatures at a few batch sizes, and ``model_info``.
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Iterator

import numpy as np
from deepfake_client import contract
from deepfake_client._proto import tfs_pb2
from deepfake_client.tensors import make_tensor_proto

DEFAULT_BATCH_SIZES = (1, 8, 32)
ENCODED_BATCH_SIZES = (1, 8)


def warmup_requests(
    input_size: int,
    model_name: str = contract.MODEL_NAME,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    encoded_batch_sizes: Iterable[int] = ENCODED_BATCH_SIZES,
    seed: int = 0,
) -> Iterator[tfs_pb2.PredictionLog]:
    """The warm-up ``PredictionLog`` records for a model with input size ``input_size``."""
    import cv2

    rng = np.random.default_rng(seed)

    def log(signature: str) -> tfs_pb2.PredictionLog:
        record = tfs_pb2.PredictionLog()
        record.predict_log.request.model_spec.name = model_name
        record.predict_log.request.model_spec.signature_name = signature
        return record

    for batch in batch_sizes:
        record = log(contract.DEFAULT_SIGNATURE)
        images = rng.integers(0, 256, size=(batch, input_size, input_size, 3), dtype=np.uint8)
        make_tensor_proto(images, out=record.predict_log.request.inputs[contract.IMAGES_INPUT])
        yield record
    for batch in encoded_batch_sizes:
        record = log(contract.ENCODED_SIGNATURE)
        images = rng.integers(0, 256, size=(batch, input_size, input_size, 3), dtype=np.uint8)
        jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in images]
        make_tensor_proto(jpegs, out=record.predict_log.request.inputs[contract.IMAGE_BYTES_INPUT])
        yield record
    record = log(contract.INFO_SIGNATURE)
    make_tensor_proto(np.zeros([1], np.int32), out=record.predict_log.request.inputs[contract.INFO_INPUT])
    yield record


def write_warmup(path: str | pathlib.Path, records: Iterable[tfs_pb2.PredictionLog]) -> int:
    """Write ``records`` as a TFRecord file; return how many were written."""
    import tensorflow as tf

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record.SerializeToString())
            count += 1
    return count


def read_warmup(path: str | pathlib.Path) -> list[tfs_pb2.PredictionLog]:
    """Parse a warm-up file back into ``PredictionLog`` messages."""
    import tensorflow as tf

    return [tfs_pb2.PredictionLog.FromString(raw.numpy()) for raw in tf.data.TFRecordDataset(str(path))]
