"""One loaded model version: any SavedModel, its signature defs, Predict and warm-up replay.

TensorFlow is imported only by :func:`load_servable`; everything else works on numpy arrays and
the project's TF-free protos, so the REST and gRPC layers never touch TensorFlow.
"""

from __future__ import annotations

import logging
import pathlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from deepfake_client._proto import tfs_pb2
from deepfake_client.tensors import DTYPE_NAMES
from serving.devserver.status import FAILED_PRECONDITION, ServingError, invalid_argument

log = logging.getLogger("serving.devserver")

DEFAULT_SIGNATURE = "serving_default"  # tensorflow/cc/saved_model/signature_constants.h
WARMUP_PATH = "assets.extra/tf_serving_warmup_requests"
MAX_WARMUP_RECORDS = 1000  # TF Serving's saved_model_warmup_util.cc limit

# TensorFlow's DataTypeString spelling, used in its error messages.
_TF_TYPE_NAMES = {
    "DT_FLOAT": "float",
    "DT_DOUBLE": "double",
    "DT_INT32": "int32",
    "DT_UINT8": "uint8",
    "DT_INT16": "int16",
    "DT_INT8": "int8",
    "DT_STRING": "string",
    "DT_INT64": "int64",
    "DT_BOOL": "bool",
    "DT_HALF": "half",
    "DT_UINT16": "uint16",
    "DT_UINT32": "uint32",
    "DT_UINT64": "uint64",
    "DT_BFLOAT16": "bfloat16",
}


def tf_type_name(enum: int) -> str:
    """TensorFlow's short name of a ``DataType`` (``float``, ``int32``, ...)."""
    name = DTYPE_NAMES.get(enum, str(enum))
    return _TF_TYPE_NAMES.get(name, name.lower())


class Servable:
    """A loaded SavedModel version.

    Attributes:
        name: the model name.
        version: the version number.
        path: the version directory.
        signature_defs: every signature of the MetaGraph (as TF Serving reports them in metadata).
    """

    def __init__(
        self,
        *,
        name: str,
        version: int,
        path: pathlib.Path,
        signature_defs: dict[str, tfs_pb2.SignatureDef],
        functions: Mapping[str, Callable[..., Any]],
        keepalive: object = None,
    ) -> None:
        self.name = name
        self.version = version
        self.path = path
        self.signature_defs = signature_defs
        self._functions = dict(functions)
        self._keepalive = keepalive  # the loaded object owns the variables the functions use

    def signature(self, signature_name: str) -> tuple[str, tfs_pb2.SignatureDef]:
        """The resolved name and definition of a signature (``""`` is ``serving_default``).

        Raises:
            ServingError: FAILED_PRECONDITION, TF Serving's text, when there is no such signature.
        """
        key = signature_name or DEFAULT_SIGNATURE
        sig = self.signature_defs.get(key)
        if sig is None or key not in self._functions:
            raise ServingError(FAILED_PRECONDITION, f'Serving signature key "{key}" not found.')
        return key, sig

    def predict(
        self,
        *,
        signature_name: str,
        inputs: Mapping[str, np.ndarray],
        output_filter: tuple[str, ...] = (),
    ) -> dict[str, np.ndarray]:
        """Run a signature on numpy inputs, checked the way TF Serving checks them.

        Returns:
            Output alias -> numpy array (``object`` arrays of bytes for strings).

        Raises:
            ServingError: unknown signature, input aliases or dtypes, outputs or a runtime failure.
        """
        key, sig = self.signature(signature_name)
        check_inputs(sig, inputs)
        aliases = select_outputs(sig, output_filter)
        try:
            result = self._functions[key](**inputs)
        except ServingError:
            raise
        except Exception as err:  # noqa: BLE001 - TensorFlow raises many types; all are bad input here
            raise invalid_argument(_runtime_message(err)) from err
        return {alias: result[alias] for alias in aliases}


def check_inputs(sig: tfs_pb2.SignatureDef, inputs: Mapping[str, np.ndarray]) -> None:
    """TF Serving's input checks (predict_util.cc, saved_model/util.cc) with their texts."""
    sent = sorted(inputs)
    wanted = sorted(sig.inputs)
    if len(sent) != len(wanted):
        extra = sorted(set(sent) - set(wanted))
        missing = sorted(set(wanted) - set(sent))
        raise invalid_argument(
            f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(wanted)}}}). Sent extra: "
            f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}."
        )
    for alias in sent:
        if alias not in sig.inputs:
            raise invalid_argument(
                f"input tensor alias not found in signature: {alias}. Inputs expected to be in the "
                f"set {{{','.join(wanted)}}}."
            )
    for index, alias in enumerate(wanted):
        want = sig.inputs[alias].dtype
        got = _dtype_enum(inputs[alias])
        if want != got:
            raise invalid_argument(
                f"Expects arg[{index}] to be {tf_type_name(want)} but {tf_type_name(got)} is provided"
            )


def select_outputs(sig: tfs_pb2.SignatureDef, output_filter: tuple[str, ...]) -> list[str]:
    """The output aliases to return, checked like predict_util.cc does."""
    if not output_filter:
        return sorted(sig.outputs)
    seen: list[str] = []
    for alias in output_filter:
        if alias not in sig.outputs:
            raise invalid_argument(
                f"output tensor alias not found in signature: {alias} Outputs expected to be in the "
                f"set {{{','.join(sorted(sig.outputs))}}}."
            )
        if alias in seen:
            raise invalid_argument(f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen


def _dtype_enum(array: np.ndarray) -> int:
    from deepfake_client.tensors import dtype_enum

    return dtype_enum(array.dtype)


def _runtime_message(err: Exception) -> str:
    message = getattr(err, "message", None) or str(err)
    return message.strip().splitlines()[0] if message.strip() else type(err).__name__


def read_signature_defs(
    path: pathlib.Path, tags: tuple[str, ...] = ("serve",)
) -> dict[str, tfs_pb2.SignatureDef]:
    """The signature defs of the SavedModel's MetaGraph with ``tags``, as TF-free protos (fields
    this subset lacks, such as ``defaults``, ride along as unknown fields)."""
    from tensorflow.core.protobuf import saved_model_pb2

    saved_model = saved_model_pb2.SavedModel()
    saved_model.ParseFromString((path / "saved_model.pb").read_bytes())
    graphs = [g for g in saved_model.meta_graphs if set(tags) == set(g.meta_info_def.tags)]
    if not graphs:
        wanted = " ".join(tags)
        raise ServingError(
            "NOT_FOUND",
            f"Could not find meta graph def matching supplied tags: {{ {wanted} }}. To inspect available "
            f"tag-sets in the SavedModel, please use the SavedModel CLI: `saved_model_cli`",
        )
    return {
        key: tfs_pb2.SignatureDef.FromString(sig.SerializeToString())
        for key, sig in graphs[0].signature_def.items()
    }


def _wrap_signature(fn: Any) -> Callable[..., dict[str, np.ndarray]]:
    import tensorflow as tf

    def call(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        tensors = {
            k: tf.constant(v)
            if v.dtype != object
            else tf.constant(list(v.reshape(-1)), shape=v.shape, dtype=tf.string)
            for k, v in inputs.items()
        }
        out = fn(**tensors)
        return {alias: value.numpy() for alias, value in out.items()}

    return call


def load_servable(
    *,
    name: str,
    version: int,
    path: str | pathlib.Path,
    warmup: bool = True,
    tags: tuple[str, ...] = ("serve",),
    warmup_iterations: int = 1,
    metrics: Any = None,
) -> Servable:
    """Load a SavedModel version and replay its warm-up records.

    Args:
        warmup: replay ``assets.extra/tf_serving_warmup_requests`` (``--enable_model_warmup``).
        tags: the MetaGraph's tags (``--saved_model_tags``).
        warmup_iterations: runs per record (``--num_request_iterations_for_warmup``).
        metrics: a :class:`~serving.devserver.metrics.Metrics` for the warm-up families.

    Raises:
        ServingError: the directory is not a loadable SavedModel (TF Serving's NOT_FOUND text when
            there is no ``saved_model.pb``), or a warm-up request fails.
    """
    path = pathlib.Path(path)
    if not (path / "saved_model.pb").is_file() and not (path / "saved_model.pbtxt").is_file():
        raise ServingError(
            "NOT_FOUND",
            f"Could not find SavedModel .pb or .pbtxt at supplied export directory path: {path}",
        )
    import tensorflow as tf

    try:
        signature_defs = read_signature_defs(path, tags)
        loaded = tf.saved_model.load(str(path), tags=list(tags))
    except ServingError:
        raise
    except Exception as err:  # noqa: BLE001 - a corrupt model raises anything
        raise ServingError(
            "INVALID_ARGUMENT" if isinstance(err, ValueError) else "UNKNOWN", _runtime_message(err)
        ) from err
    functions = {
        key: _wrap_signature(loaded.signatures[key])
        for key in loaded.signatures.keys()
        if key in signature_defs
    }
    servable = Servable(
        name=name,
        version=version,
        path=path,
        signature_defs=signature_defs,
        functions=functions,
        keepalive=loaded,
    )
    if warmup:
        start, status, count = time.perf_counter(), "OK", 0
        try:
            count = replay_warmup(servable, iterations=max(warmup_iterations, 1))
        except ServingError as err:
            status = err.code
            raise
        finally:
            if metrics is not None and (path / WARMUP_PATH).is_file():
                metrics.observe_warmup(
                    model_path=str(path), status=status, seconds=time.perf_counter() - start, records=count
                )
        if count:
            log.info(
                "Finished reading warmup data for model at %s. Number of warmup records read: %d.",
                path,
                count,
            )
    return servable


def replay_warmup(servable: Servable, *, iterations: int = 1) -> int:
    """Run every Predict record of ``assets.extra/tf_serving_warmup_requests`` (``iterations``
    times each); return how many records there were.

    Raises:
        ServingError: a record is not a PredictionLog with a predict_log, or its request fails.
    """
    from deepfake_client.tensors import make_ndarray

    warmup_file = servable.path / WARMUP_PATH
    if not warmup_file.is_file():
        return 0
    import tensorflow as tf

    count = 0
    for record in tf.data.TFRecordDataset(str(warmup_file)):
        count += 1
        if count > MAX_WARMUP_RECORDS:
            raise invalid_argument(
                f"Number of warmup records exceeds the maximum ({MAX_WARMUP_RECORDS}) at {warmup_file}"
            )
        entry = tfs_pb2.PredictionLog.FromString(record.numpy())
        if not entry.HasField("predict_log"):
            raise invalid_argument("Unsupported log_type for warmup: only predict_log is supported here")
        request = entry.predict_log.request
        inputs = {alias: make_ndarray(proto) for alias, proto in request.inputs.items()}
        for _ in range(iterations):
            servable.predict(
                signature_name=request.model_spec.signature_name,
                inputs=inputs,
                output_filter=tuple(request.output_filter),
            )
    return count
