"""TF Serving's REST JSON for tensors: the row and columnar request forms and their responses.

The rules and error texts follow ``tensorflow_serving/util/json_tensor.cc``: ``instances`` (rows,
batched along a new first dimension) or ``inputs`` (columns), never both; ``{"b64": ...}`` for
binary strings; JSON numbers checked against the signature's dtype (no lossy conversion, no
floats for integer inputs); dense lists only. A numeric fast path uses numpy and falls back to the
exact element-by-element walk whenever it cannot prove the walk would succeed, so the error texts
are always the walk's.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from deepfake_client._proto import tfs_pb2
from deepfake_client.tensors import numpy_dtype
from serving.devserver.json_numeric import Span
from serving.devserver.json_value import (
    format_decimal,
    gc_paused,
    json_text,
    json_type,
    parse_json,
    render_error,
    signature_name,
)
from serving.devserver.runtime import tf_type_name
from serving.devserver.status import ServingError, invalid_argument

__all__ = [
    "COLUMNAR",
    "ROW",
    "format_decimal",
    "json_to_array",
    "parse_json",
    "parse_predict_request",
    "render_error",
    "render_predict_response",
]

ROW, COLUMNAR = "row", "columnar"
_WEB_SAFE = str.maketrans("-_", "+/")
_INT_RANGES = {
    tfs_pb2.DT_INT32: (-(2**31), 2**31 - 1),
    tfs_pb2.DT_INT16: (-(2**31), 2**31 - 1),
    tfs_pb2.DT_INT8: (-(2**31), 2**31 - 1),
    tfs_pb2.DT_UINT8: (-(2**31), 2**31 - 1),
    tfs_pb2.DT_INT64: (-(2**63), 2**63 - 1),
    tfs_pb2.DT_UINT32: (0, 2**32 - 1),
    tfs_pb2.DT_UINT64: (0, 2**64 - 1),
}
_FLOATS = (tfs_pb2.DT_FLOAT, tfs_pb2.DT_DOUBLE)


# ------------------------------------------------------------------ request side


def _dense_shape(value: Any) -> list[int]:
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def decode_b64(value: dict) -> bytes:
    """JsonDecodeBase64Object: the bytes of ``{"b64": ...}`` (absl takes both base64 alphabets)."""
    text = value["b64"].translate(_WEB_SAFE)
    try:
        return base64.b64decode(
            text + "=" * (-len(text.rstrip("=")) % 4 if "=" not in text else 0), validate=True
        )
    except (binascii.Error, ValueError) as err:
        raise invalid_argument("Unable to base64 decode") from err


def _type_error(value: Any, dtype: int) -> ServingError:
    return invalid_argument(
        f"JSON Value: {json_text(value)} Type: {json_type(value)} is not of expected type: "
        f"{tf_type_name(dtype)}"
    )


def _leaf(value: Any, dtype: int) -> Any:
    if isinstance(value, dict):
        if dtype != tfs_pb2.DT_STRING:
            raise _type_error(value, dtype)
        if not _is_b64(value):
            raise invalid_argument(f"JSON Value: {json_text(value)} not formatted correctly for base64 data")
        return decode_b64(value)
    if dtype == tfs_pb2.DT_STRING:
        if not isinstance(value, str):
            raise _type_error(value, dtype)
        return value.encode("utf-8")
    if dtype == tfs_pb2.DT_BOOL:
        if not isinstance(value, bool):
            raise _type_error(value, dtype)
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _type_error(value, dtype)
    if dtype in _FLOATS:  # any number, cast as rapidjson's GetFloat/GetDouble (no precision check)
        return value if isinstance(value, float) or abs(value) < 2**64 else float(value)
    low, high = _INT_RANGES.get(dtype, (None, None))
    if low is None:
        raise ServingError(
            "UNIMPLEMENTED", f"Conversion of JSON Value: {json_text(value)} to type: {tf_type_name(dtype)}"
        )
    if not isinstance(value, int) or not low <= value <= high:
        raise _type_error(value, dtype)
    return value


def _walk(value: Any, level: int, shape: list[int], dtype: int, out: list[Any]) -> None:
    rank = len(shape)
    if not isinstance(value, list):
        if level != rank:
            raise invalid_argument(
                f"JSON Value: {json_text(value)} found at incorrect level: {level + 1} in the "
                f"JSON DOM. Expected at level: {rank}"
            )
        out.append(_leaf(value, dtype))
        return
    if level >= rank:
        raise invalid_argument(f"Encountered list at unexpected level: {level} expected < {rank}")
    if len(value) != shape[level]:
        raise invalid_argument(
            f"Encountered list at unexpected size: {len(value)} at level: {level} expected "
            f"size: {shape[level]}"
        )
    for item in value:
        _walk(item, level + 1, shape, dtype, out)


def _fast_numeric(value: Any, dtype: int, shape: list[int]) -> np.ndarray | None:
    """numpy conversion when it provably equals the walk's result; ``None`` to take the walk."""
    if dtype == tfs_pb2.DT_STRING or not isinstance(value, list):
        return None
    try:
        array = np.array(value)
    except (ValueError, OverflowError):
        return None
    if list(array.shape) != shape or array.size == 0:
        return None
    kind = array.dtype.kind
    if dtype == tfs_pb2.DT_BOOL:
        return array if kind == "b" else None
    if dtype in _FLOATS:
        if kind not in "iuf":
            return None
        with np.errstate(over="ignore"):
            return array.astype(numpy_dtype(dtype))
    if kind not in "iu" or dtype not in _INT_RANGES:
        return None
    low, high = _INT_RANGES[dtype]
    if array.min() < low or array.max() > high:
        return None
    return array.astype(numpy_dtype(dtype))


def _decode_span(span: Span, dtype: int) -> np.ndarray | None:
    """The numpy fast path for a cut-out numeric array (None: take the exact path)."""
    if dtype in _FLOATS:
        with np.errstate(over="ignore"):
            return span.decode(np.dtype(numpy_dtype(dtype)), integers_only=False, low=None, high=None)
    if dtype in _INT_RANGES:
        low, high = _INT_RANGES[dtype]
        return span.decode(np.dtype(numpy_dtype(dtype)), integers_only=True, low=low, high=high)
    return None


def json_to_array(value: Any, dtype: int) -> np.ndarray:
    """One JSON value (scalar or dense nested list) as an array of the signature's dtype.

    Raises:
        ServingError: INVALID_ARGUMENT with json_tensor.cc's text.
    """
    if isinstance(value, Span):
        decoded = _decode_span(value, dtype)
        if decoded is not None:
            return decoded
        value = value.materialize()
    shape = _dense_shape(value)
    with gc_paused():
        fast = _fast_numeric(value, dtype, shape)
    if fast is not None:
        return fast
    flat: list[Any] = []
    _walk(value, 0, shape, dtype, flat)
    if dtype == tfs_pb2.DT_STRING:
        array = np.empty(len(flat), dtype=object)
        array[:] = flat
        return array.reshape(shape)
    return np.array(flat, dtype=numpy_dtype(dtype)).reshape(shape)


def _shape_text(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _from_instances(
    doc: dict, instances: list, infos: Mapping[str, tfs_pb2.TensorInfo]
) -> dict[str, np.ndarray]:
    names = sorted(infos)
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise invalid_argument(
            "instances is a plain list, but expecting list of objects as multiple input "
            "tensors required as per tensorinfo_map"
        )
    objects = isinstance(instances[0], dict) and not _is_b64(instances[0])
    if not objects:
        for index, item in enumerate(instances):
            if isinstance(item, dict) and not _is_b64(item):
                raise invalid_argument(f"Expecting value/list but got object at item {index} of input list")
        columns = {names[0]: instances}
    else:
        for index, item in enumerate(instances):
            if not isinstance(item, dict) or _is_b64(item):
                raise invalid_argument(f"Expecting object but got list at item {index} of input list")
            for key in item:
                if key not in infos:
                    raise invalid_argument(
                        f"Failed to process element: {index} key: {key} of 'instances' list. "
                        f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {key}"
                    )
            if set(item) != set(names):
                raise invalid_argument(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{json_text(item)} keys must be equal to: {','.join(names)}"
                )
        columns = {name: [item[name] for item in instances] for name in names}
    out = {}
    for name, rows in columns.items():
        dtype = infos[name].dtype
        with gc_paused():
            spans = any(isinstance(r, Span) for r in rows)
            fast = None if spans else _fast_numeric(rows, dtype, _dense_shape(rows))
        if fast is not None:
            out[name] = fast
            continue
        arrays = []
        for index, row in enumerate(rows):
            try:
                array = json_to_array(row, dtype)
                if arrays and array.size != arrays[0].size:
                    raise invalid_argument(f"Expecting tensor size: {arrays[0].size} but got: {array.size}")
                if arrays and array.shape != arrays[0].shape:
                    raise invalid_argument(
                        f"Expecting shape {_shape_text(arrays[0].shape)} but got: {_shape_text(array.shape)}"
                    )
            except ServingError as err:
                key = f" key: {name}" if objects else ""
                raise invalid_argument(
                    f"Failed to process element: {index}{key} of 'instances' list. "
                    f"Error: {err.code}: {err.message}"
                ) from err
            arrays.append(array)
        out[name] = np.stack(arrays) if arrays[0].dtype != object else _stack_objects(arrays)
    return out


def _stack_objects(arrays: list[np.ndarray]) -> np.ndarray:
    out = np.empty((len(arrays), *arrays[0].shape), dtype=object)
    for i, array in enumerate(arrays):
        out[i] = array
    return out


def parse_predict_request(
    body: bytes, input_infos: Callable[[str], Mapping[str, tfs_pb2.TensorInfo]]
) -> tuple[str, dict[str, np.ndarray], str]:
    """FillPredictRequestFromJson: ``(signature_name, inputs, format)`` from a request body.

    Args:
        body: the (decompressed) request body.
        input_infos: signature name -> its input TensorInfos (raises ServingError when unknown).

    Raises:
        ServingError: INVALID_ARGUMENT with json_tensor.cc's texts.
    """
    doc = parse_json(body)
    signature = signature_name(doc)
    infos = input_infos(signature)
    if not infos:
        raise invalid_argument(f"Failed to get input map for signature: {signature or 'DEFAULT'}")
    if "instances" in doc:
        if "inputs" in doc:
            raise invalid_argument(
                f"JSON Value: {json_text(doc)} Not formatted correctly expecting only one of "
                "'inputs' or 'instances' keys to exist "
            )
        instances = doc["instances"]
        if isinstance(instances, Span):
            if len(infos) == 1:  # a dense numeric array: the batch of the single input
                name = next(iter(infos))
                return signature, {name: json_to_array(instances, infos[name].dtype)}, ROW
            instances = instances.materialize()
        if not isinstance(instances, list):
            raise invalid_argument(f"JSON Value: {json_text(doc)} Expecting 'instances' to be an list/array")
        if not instances:
            raise invalid_argument(f"JSON Value: {json_text(doc)} No values in 'instances' array")
        return signature, _from_instances(doc, instances, infos), ROW
    if "inputs" in doc:
        value = doc["inputs"]
        if isinstance(value, dict) and _is_b64(value) and len(infos) == 1:
            name = next(iter(infos))
            return signature, {name: json_to_array(value, infos[name].dtype)}, COLUMNAR
        if not isinstance(value, dict) or _is_b64(value):
            if len(infos) > 1:
                raise invalid_argument(
                    "inputs is a plain value/list, but expecting an object as multiple input "
                    "tensors required as per tensorinfo_map"
                )
            name = next(iter(infos))
            return signature, {name: json_to_array(value, infos[name].dtype)}, COLUMNAR
        inputs = {}
        for name in sorted(infos):
            if name not in value:
                raise invalid_argument(f"Missing named input: {name} in 'inputs' object.")
            inputs[name] = json_to_array(value[name], infos[name].dtype)
        return signature, inputs, COLUMNAR
    raise invalid_argument("Missing 'inputs' or 'instances' key")


# ------------------------------------------------------------------ response side


def _value_text(value: Any, dtype: np.dtype, as_bytes: bool) -> str:
    if dtype.kind in "OS":
        raw = value if isinstance(value, bytes) else str(value).encode()
        if as_bytes:
            return '{"b64": "' + base64.b64encode(raw).decode() + '"}'
        return json.dumps(raw.decode("utf-8", errors="replace"), ensure_ascii=False)
    if dtype.kind == "f":
        return format_decimal(float(value), double=dtype == np.float64)
    if dtype.kind == "b":
        return "true" if value else "false"
    return str(int(value))


def _array_text(array: np.ndarray, as_bytes: bool) -> str:
    if array.ndim == 0:
        return _value_text(array.reshape(-1)[0], array.dtype, as_bytes)
    if array.ndim == 1:
        return "[" + ", ".join(_value_text(v, array.dtype, as_bytes) for v in array) + "]"
    return "[" + ", ".join(_array_text(sub, as_bytes) for sub in array) + "]"


def _row_text(array: np.ndarray, index: int, as_bytes: bool) -> str:
    if array.ndim == 1:
        return _value_text(array[index], array.dtype, as_bytes)
    return _array_text(array[index], as_bytes)


def _is_bytes_output(name: str, array: np.ndarray) -> bool:
    return (array.dtype == object or array.dtype.kind == "S") and name.endswith("_bytes")


def render_predict_response(outputs: Mapping[str, np.ndarray], fmt: str) -> str:
    """MakeJsonFromTensors: ``{"predictions": ...}`` (rows) or ``{"outputs": ...}`` (columns).

    Raises:
        ServingError: INVALID_ARGUMENT for outputs that cannot form rows.
    """
    if not outputs:
        raise invalid_argument("Cannot convert empty tensor map to JSON")
    names = sorted(outputs)
    if fmt == COLUMNAR:
        if len(names) == 1:
            return (
                '{"outputs": '
                + _array_text(outputs[names[0]], _is_bytes_output(names[0], outputs[names[0]]))
                + "}"
            )
        parts = [f'"{n}": ' + _array_text(outputs[n], _is_bytes_output(n, outputs[n])) for n in names]
        return '{"outputs": {' + ", ".join(parts) + "}}"
    batch = -1
    for name in names:
        array = outputs[name]
        if array.ndim == 0:
            raise invalid_argument(f"Tensor name: {name} has no shape information ")
        if batch >= 0 and array.shape[0] != batch:
            raise invalid_argument(
                f"Tensor name: {name} has inconsistent batch size: {array.shape[0]} expecting: {batch}"
            )
        batch = array.shape[0]
    rows = []
    for i in range(batch):
        if len(names) == 1:
            rows.append(_row_text(outputs[names[0]], i, _is_bytes_output(names[0], outputs[names[0]])))
        else:
            rows.append(
                "{"
                + ", ".join(
                    f'"{n}": ' + _row_text(outputs[n], i, _is_bytes_output(n, outputs[n])) for n in names
                )
                + "}"
            )
    return '{"predictions": [' + ", ".join(rows) + "]}"
