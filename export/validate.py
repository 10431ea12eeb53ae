"""Checks a version directory before it is published: TF Serving must be able to serve it as is.

It loads the SavedModel back with TensorFlow's loader, checks the signatures against Contract 2,
runs both image signatures on the golden batch and compares them with the Keras model's scores,
checks ``model_info``, and parses and replays every warm-up record. A version with a temporal
model also has its ``sequence`` signature checked against the Keras temporal model on the golden
sequences (``export.metadata.golden_sequences``).
"""

from __future__ import annotations

import dataclasses
import pathlib
from typing import Any

import numpy as np

from deepfake_client import contract
from deepfake_client.errors import InvalidInputError
from deepfake_client.tensors import make_ndarray
from export.metadata import GOLDEN_TOLERANCE

# (signature, {input: (dtype, shape)}, {output: (dtype, shape)}); -1 = any size, "S" = the input size.
SPEC = {
    contract.DEFAULT_SIGNATURE: (
        {contract.IMAGES_INPUT: ("uint8", [-1, "S", "S", 3])},
        {contract.PROBABILITY_OUTPUT: ("float32", [-1]), contract.LOGIT_OUTPUT: ("float32", [-1])},
    ),
    contract.ENCODED_SIGNATURE: (
        {contract.IMAGE_BYTES_INPUT: ("string", [-1])},
        {contract.PROBABILITY_OUTPUT: ("float32", [-1]), contract.LOGIT_OUTPUT: ("float32", [-1])},
    ),
    contract.INFO_SIGNATURE: (
        {contract.INFO_INPUT: ("int32", [-1])},
        {
            contract.INFO_INPUT_SIZE: ("int32", [-1]),
            contract.INFO_CROP_MARGIN: ("float32", [-1]),
            contract.INFO_THRESHOLD: ("float32", [-1]),
        },
    ),
}


def contract_spec(sequence_length: int = 0) -> dict:
    """``SPEC``, plus the ``sequence`` signature and ``model_info``'s two outputs when ``T`` is not 0."""
    if not sequence_length:
        return SPEC
    spec = dict(SPEC)
    info_inputs, info_outputs = SPEC[contract.INFO_SIGNATURE]
    spec[contract.INFO_SIGNATURE] = (
        info_inputs,
        {
            **info_outputs,
            contract.INFO_SEQUENCE_LENGTH: ("int32", [-1]),
            contract.INFO_SEQUENCE_THRESHOLD: ("float32", [-1]),
        },
    )
    spec[contract.SEQUENCE_SIGNATURE] = (
        {
            contract.SEQUENCE_FRAMES_INPUT: ("uint8", [-1, sequence_length, "S", "S", 3]),
            contract.SEQUENCE_LENGTHS_INPUT: ("int32", [-1]),
        },
        {contract.PROBABILITY_OUTPUT: ("float32", [-1]), contract.LOGIT_OUTPUT: ("float32", [-1])},
    )
    return spec


@dataclasses.dataclass
class ValidationReport:
    """What validation measured: the largest score differences and the warm-up records replayed,
    and the saved model's own scores of the golden batch (``golden_scores``, not in ``as_dict``)."""

    max_abs_diff_keras: float
    max_abs_diff_encoded: float
    warmup_records: int
    tolerance: float = GOLDEN_TOLERANCE
    max_abs_diff_sequence: float | None = None  # the sequence signature vs the Keras temporal model
    golden_scores: dict[str, np.ndarray] = dataclasses.field(default_factory=dict, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "golden_scores"}


def _spec_of(tensor_spec: Any) -> tuple[str, list[int | None]]:
    return tensor_spec.dtype.name, list(tensor_spec.shape.as_list())


def check_signatures(loaded: Any, input_size: int, sequence_length: int = 0) -> None:
    """Raise ``InvalidInputError`` unless the loaded SavedModel's signatures match Contract 2."""
    spec = contract_spec(sequence_length)
    names = set(loaded.signatures)
    if names != set(spec):
        raise InvalidInputError(f"signatures {sorted(names)} != the contract's {sorted(spec)}")
    for name, (inputs, outputs) in spec.items():
        function = loaded.signatures[name]
        actual_inputs = {k: _spec_of(v) for k, v in function.structured_input_signature[1].items()}
        actual_outputs = {k: _spec_of(v) for k, v in function.structured_outputs.items()}
        for label, expected, actual in (
            ("input", inputs, actual_inputs),
            ("output", outputs, actual_outputs),
        ):
            want = {
                k: (d, [None if s == -1 else input_size if s == "S" else s for s in shape])
                for k, (d, shape) in expected.items()
            }
            if want != actual:
                raise InvalidInputError(f"signature {name!r}: {label}s {actual} != the contract's {want}")


def validate_version(
    path: str | pathlib.Path,
    keras_model: Any,
    golden: np.ndarray,
    input_size: int,
    crop_margin: float,
    threshold: float,
    *,
    sequence_model: Any = None,
    golden_sequences: tuple[np.ndarray, np.ndarray] | None = None,
) -> ValidationReport:
    """Load the SavedModel at ``path`` and check it; raise ``InvalidInputError`` on any mismatch.

    With ``sequence_model`` (and ``golden_sequences``: frames, lengths) the ``sequence`` signature
    is checked too, and its scores land in ``golden_scores`` as ``sequence_probability`` and
    ``sequence_logit``.
    """
    import tensorflow as tf

    from export.warmup import read_warmup

    path = pathlib.Path(path)
    loaded = tf.saved_model.load(str(path))
    length = int(sequence_model.inputs[0].shape[1]) if sequence_model is not None else 0
    check_signatures(loaded, input_size, length)
    default = loaded.signatures[contract.DEFAULT_SIGNATURE]
    served = default(**{contract.IMAGES_INPUT: tf.constant(golden)})
    expected = tf.sigmoid(
        tf.reshape(tf.cast(keras_model(golden.astype(np.float32), training=False), tf.float32), [-1])
    )
    diff_keras = float(np.max(np.abs(served[contract.PROBABILITY_OUTPUT].numpy() - expected.numpy())))
    if not diff_keras <= GOLDEN_TOLERANCE:
        raise InvalidInputError(
            f"exported scores differ from Keras by {diff_keras:.2e} > {GOLDEN_TOLERANCE:.0e}"
        )
    pngs = tf.constant([tf.io.encode_png(image).numpy() for image in golden])
    from_png = loaded.signatures[contract.ENCODED_SIGNATURE](**{contract.IMAGE_BYTES_INPUT: pngs})
    diff_encoded = float(
        np.max(
            np.abs(
                from_png[contract.PROBABILITY_OUTPUT].numpy() - served[contract.PROBABILITY_OUTPUT].numpy()
            )
        )
    )
    if not diff_encoded <= GOLDEN_TOLERANCE:
        raise InvalidInputError(
            f"'encoded' differs from 'serving_default' on PNG crops by {diff_encoded:.2e}"
        )
    info = loaded.signatures[contract.INFO_SIGNATURE](**{contract.INFO_INPUT: tf.constant([0], tf.int32)})
    got = (
        int(info[contract.INFO_INPUT_SIZE][0]),
        float(info[contract.INFO_CROP_MARGIN][0]),
        float(info[contract.INFO_THRESHOLD][0]),
    )
    if got[0] != input_size or abs(got[1] - crop_margin) > 1e-6 or abs(got[2] - threshold) > 1e-6:
        raise InvalidInputError(f"model_info answers {got}, expected {(input_size, crop_margin, threshold)}")
    records = read_warmup(path / contract.WARMUP_FILE)
    if not records:
        raise InvalidInputError("the warm-up file holds no record")
    for record in records:
        request = record.predict_log.request
        signature = loaded.signatures[request.model_spec.signature_name or contract.DEFAULT_SIGNATURE]
        signature(**{key: tf.constant(make_ndarray(value)) for key, value in request.inputs.items()})
    scores = {name: served[name].numpy() for name in (contract.PROBABILITY_OUTPUT, contract.LOGIT_OUTPUT)}
    diff_sequence = None
    if sequence_model is not None and golden_sequences is not None:
        diff_sequence = _check_sequence(loaded, sequence_model, *golden_sequences, scores)
    return ValidationReport(
        diff_keras, diff_encoded, len(records), max_abs_diff_sequence=diff_sequence, golden_scores=scores
    )


def _check_sequence(
    loaded: Any, sequence_model: Any, frames: np.ndarray, lengths: np.ndarray, scores: dict
) -> float:
    """The ``sequence`` signature on the golden sequences vs the Keras temporal model; ``model_info``'s T."""
    import tensorflow as tf

    from training.temporal import sequence_mask

    length = frames.shape[1]
    info = loaded.signatures[contract.INFO_SIGNATURE](**{contract.INFO_INPUT: tf.constant([0], tf.int32)})
    if int(info[contract.INFO_SEQUENCE_LENGTH][0]) != length:
        raise InvalidInputError(
            f"model_info's sequence_length {int(info[contract.INFO_SEQUENCE_LENGTH][0])} != {length}"
        )
    served = loaded.signatures[contract.SEQUENCE_SIGNATURE](
        **{
            contract.SEQUENCE_FRAMES_INPUT: tf.constant(frames),
            contract.SEQUENCE_LENGTHS_INPUT: tf.constant(lengths),
        }
    )
    inputs = {"frames": tf.constant(frames, tf.float32), "mask": sequence_mask(lengths, length)}
    expected = tf.sigmoid(
        tf.reshape(tf.cast(sequence_model(inputs, training=False), tf.float32), [-1])
    ).numpy()
    got = served[contract.PROBABILITY_OUTPUT].numpy()
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= GOLDEN_TOLERANCE:
        raise InvalidInputError(f"the sequence signature differs from the Keras temporal model by {diff:.2e}")
    scores["sequence_probability"] = got
    scores["sequence_logit"] = served[contract.LOGIT_OUTPUT].numpy()
    return diff
