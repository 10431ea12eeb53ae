"""numpy arrays to and from ``TensorProto`` without TensorFlow.

The encoding matches ``tf.make_tensor_proto`` byte for byte for the types the project sends
(numeric arrays go into ``tensor_content``, strings into ``string_val``); decoding accepts every
form TF Serving answers with (``tensor_content`` or the typed ``*_val`` fields, including the
single-value broadcast).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from deepfake_client._proto import tfs_pb2
from deepfake_client.errors import InvalidInputError

_DTYPES: dict[int, np.dtype] = {
    tfs_pb2.DT_FLOAT: np.dtype(np.float32),
    tfs_pb2.DT_DOUBLE: np.dtype(np.float64),
    tfs_pb2.DT_INT32: np.dtype(np.int32),
    tfs_pb2.DT_UINT8: np.dtype(np.uint8),
    tfs_pb2.DT_INT16: np.dtype(np.int16),
    tfs_pb2.DT_INT8: np.dtype(np.int8),
    tfs_pb2.DT_INT64: np.dtype(np.int64),
    tfs_pb2.DT_BOOL: np.dtype(np.bool_),
    tfs_pb2.DT_UINT16: np.dtype(np.uint16),
    tfs_pb2.DT_HALF: np.dtype(np.float16),
    tfs_pb2.DT_UINT32: np.dtype(np.uint32),
    tfs_pb2.DT_UINT64: np.dtype(np.uint64),
}
_ENUMS: dict[np.dtype, int] = {v: k for k, v in _DTYPES.items()}

# Which typed field holds the values of each dtype when tensor_content is empty.
_VAL_FIELDS: dict[int, str] = {
    tfs_pb2.DT_FLOAT: "float_val",
    tfs_pb2.DT_DOUBLE: "double_val",
    tfs_pb2.DT_INT32: "int_val",
    tfs_pb2.DT_UINT8: "int_val",
    tfs_pb2.DT_INT16: "int_val",
    tfs_pb2.DT_INT8: "int_val",
    tfs_pb2.DT_UINT16: "int_val",
    tfs_pb2.DT_INT64: "int64_val",
    tfs_pb2.DT_BOOL: "bool_val",
    tfs_pb2.DT_HALF: "half_val",
    tfs_pb2.DT_UINT32: "uint32_val",
    tfs_pb2.DT_UINT64: "uint64_val",
}

DTYPE_NAMES: dict[int, str] = {v.number: v.name for v in tfs_pb2.DataType.DESCRIPTOR.values}


def dtype_enum(dtype: np.dtype | type) -> int:
    """The TensorFlow ``DataType`` number of a numpy dtype (strings and bytes are ``DT_STRING``)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "SUO":
        return tfs_pb2.DT_STRING
    try:
        return _ENUMS[dtype.newbyteorder("=")]  # a big-endian array is converted when encoded
    except KeyError:
        raise InvalidInputError(f"unsupported tensor dtype {dtype}") from None


def numpy_dtype(enum: int) -> np.dtype:
    """The numpy dtype of a TensorFlow ``DataType`` number (``object`` for ``DT_STRING``)."""
    if enum == tfs_pb2.DT_STRING:
        return np.dtype(object)
    try:
        return _DTYPES[enum]
    except KeyError:
        raise InvalidInputError(f"unsupported tensor dtype {DTYPE_NAMES.get(enum, enum)}") from None


def make_tensor_proto(
    values: np.ndarray | Sequence[bytes], out: tfs_pb2.TensorProto | None = None
) -> tfs_pb2.TensorProto:
    """Encode an array (or a list of byte strings) as a ``TensorProto``.

    Args:
        values: a numeric numpy array, or byte strings for a ``DT_STRING`` tensor.
        out: a message to fill in place (for example ``request.inputs["images"]``).

    Returns:
        The filled message, byte-identical to ``tf.make_tensor_proto(values)``.
    """
    proto = tfs_pb2.TensorProto() if out is None else out
    array = values if isinstance(values, np.ndarray) else np.asarray(values)
    proto.tensor_shape.SetInParent()  # present even for a scalar, as TensorFlow writes it
    if array.dtype.kind not in "SUO":
        proto.dtype = dtype_enum(array.dtype)
        for size in array.shape:
            proto.tensor_shape.dim.add().size = size
        if array.size == 1 and proto.dtype != tfs_pb2.DT_HALF:
            # TensorFlow writes a single value into the typed field, not tensor_content.
            getattr(proto, _VAL_FIELDS[proto.dtype]).append(array.reshape(-1)[0].item())
            return proto
        little = np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<"), copy=False)
        proto.tensor_content = little.tobytes()  # one copy (astype copies only a big-endian array)
        return proto
    proto.dtype = tfs_pb2.DT_STRING
    for size in array.shape:
        proto.tensor_shape.dim.add().size = size
    proto.string_val.extend(v.encode() if isinstance(v, str) else bytes(v) for v in array.reshape(-1))
    return proto


def make_ndarray(proto: tfs_pb2.TensorProto) -> np.ndarray:
    """Decode a ``TensorProto`` into a numpy array (``object`` array of bytes for strings).

    Raises:
        InvalidInputError: the dtype is unsupported or the values do not fit the shape.
    """
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    count = int(np.prod(shape, dtype=np.int64))
    dtype = numpy_dtype(proto.dtype)
    if proto.dtype == tfs_pb2.DT_STRING:
        flat = np.empty(len(proto.string_val), dtype=object)
        flat[:] = list(proto.string_val)
    elif proto.tensor_content:
        flat = np.frombuffer(proto.tensor_content, dtype=dtype.newbyteorder("<")).astype(dtype)
    else:
        values = getattr(proto, _VAL_FIELDS[proto.dtype])
        if proto.dtype == tfs_pb2.DT_HALF:
            flat = np.array(values, dtype=np.uint16).view(np.float16)
        else:
            flat = np.array(values, dtype=dtype)
    if flat.size == count:
        return flat.reshape(shape)
    if flat.size == 1 or (flat.size == 0 and proto.dtype != tfs_pb2.DT_STRING):
        # TensorFlow's rule: a single value (or none: the default) fills the whole tensor.
        fill = flat[0] if flat.size else dtype.type(0)
        out = np.empty(shape, dtype=dtype)
        out.fill(fill)
        return out
    raise InvalidInputError(f"tensor has {flat.size} values but its shape {list(shape)} needs {count}")
