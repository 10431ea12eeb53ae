"""Warm-up records: ``assets.extra/tf_serving_warmup_requests``.

TF Serving replays these ``PredictionLog`` records when it loads a version, before it marks the
version AVAILABLE, so the first real request does not pay for graph optimisation and memory
allocation. The records cover both image signatures at a few batch sizes, ``model_info``, and the
``sequence`` signature of a version with a temporal model at the batch sizes a client sends (the
tracks of one video: a few; each sequence is ``T`` crops, so 64 of them would be a 150 MB record
at 224 px).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable, Iterator

import numpy as np

from deepfake_client import contract
from deepfake_client._proto import tfs_pb2
from deepfake_client.tensors import make_tensor_proto

# Every allowed_batch_sizes of serving/batching_parameters.txt (tests/test_deploy.py checks): the
# batcher pads each batch to one of them, so each is a shape the first real request could meet.
DEFAULT_BATCH_SIZES = (1, 8, 32, 64)
ENCODED_BATCH_SIZES = DEFAULT_BATCH_SIZES
SEQUENCE_BATCH_SIZES = (1, 4)


def predict_log(
    signature: str, inputs: dict[str, np.ndarray | list[bytes]], model_name: str = contract.MODEL_NAME
) -> tfs_pb2.PredictionLog:
    """One warm-up record: a Predict request of ``signature`` on ``inputs`` (arrays or byte strings)."""
    record = tfs_pb2.PredictionLog()
    request = record.predict_log.request
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for alias, values in inputs.items():
        make_tensor_proto(values, out=request.inputs[alias])
    return record


def warmup_requests(
    input_size: int,
    model_name: str = contract.MODEL_NAME,
    batch_sizes: Iterable[int] = DEFAULT_BATCH_SIZES,
    encoded_batch_sizes: Iterable[int] = ENCODED_BATCH_SIZES,
    seed: int = 0,
    sequence_length: int = 0,
) -> Iterator[tfs_pb2.PredictionLog]:
    """The warm-up ``PredictionLog`` records for a model with input size ``input_size`` (and a
    ``sequence`` signature of ``T = sequence_length`` if that is not 0)."""
    import cv2

    rng = np.random.default_rng(seed)
    for batch in batch_sizes:
        images = rng.integers(0, 256, size=(batch, input_size, input_size, 3), dtype=np.uint8)
        yield predict_log(contract.DEFAULT_SIGNATURE, {contract.IMAGES_INPUT: images}, model_name)
    for batch in encoded_batch_sizes:
        images = rng.integers(0, 256, size=(batch, input_size, input_size, 3), dtype=np.uint8)
        jpegs = [cv2.imencode(".jpg", image)[1].tobytes() for image in images]
        yield predict_log(contract.ENCODED_SIGNATURE, {contract.IMAGE_BYTES_INPUT: jpegs}, model_name)
    yield predict_log(contract.INFO_SIGNATURE, {contract.INFO_INPUT: np.zeros([1], np.int32)}, model_name)
    for batch in SEQUENCE_BATCH_SIZES if sequence_length else ():
        frames = rng.integers(
            0, 256, size=(batch, sequence_length, input_size, input_size, 3), dtype=np.uint8
        )
        lengths = np.full([batch], sequence_length, np.int32)
        yield predict_log(
            contract.SEQUENCE_SIGNATURE,
            {contract.SEQUENCE_FRAMES_INPUT: frames, contract.SEQUENCE_LENGTHS_INPUT: lengths},
            model_name,
        )


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
