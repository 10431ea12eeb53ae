"""The fast path of REST JSON: long numeric array literals cut out of the body and decoded by numpy.

A 32x224x224x3 uint8 request is ~20 MB of JSON and 4.8 million numbers; building Python lists of
them costs far more than the model run. Instead, every array literal that is an object member's
value, is at least :data:`MIN_SPAN` bytes long and holds only numbers, is found with vectorised
byte tests, checked to be a dense array (its brackets and commas are exactly those of its shape)
of valid JSON numbers, and replaced by a placeholder before the rest of the document is parsed.
The tensor is then read with ``np.fromstring`` for the dtype the signature asks for. Anything the
checks cannot prove (empty lists, ragged lists, odd number syntax, out-of-range values) is left to
the exact element-by-element path, so its answers and error texts are unchanged.
"""

from __future__ import annotations

import secrets

import numpy as np

MIN_SPAN = 512  # bytes; shorter arrays are cheap enough for the exact path
_NUMBER = b"0123456789-+.eE"
_SPACE = b" \t\n\r"
_ALLOWED = bytes(1 if c in _NUMBER + _SPACE + b",[]" else 0 for c in range(256))
_BRACKETS_TO_SPACE = bytes.maketrans(b"[]", b"  ")


class Span:
    """A dense numeric JSON array cut out of a request body (its bytes and its shape)."""

    __slots__ = ("text", "shape", "offset", "_value")

    def __init__(self, text: bytes, shape: tuple[int, ...], offset: int) -> None:
        self.text = text
        self.shape = shape
        self.offset = offset
        self._value = None

    def materialize(self):  # type: ignore[no-untyped-def]
        """The array as Python lists (for the exact path and error messages)."""
        if self._value is None:
            import orjson

            self._value = orjson.loads(self.text)
        return self._value

    def decode(
        self, dtype: np.dtype, *, integers_only: bool, low: int | None, high: int | None
    ) -> np.ndarray | None:
        """The values as ``dtype``, or ``None`` when the exact path must decide.

        Args:
            dtype: the numpy dtype of the signature's input.
            integers_only: the input takes JSON integers only (no fraction or exponent).
            low, high: the range integers must be in (None for float inputs).
        """
        has_float_syntax = any(c in self.text for c in (b".", b"e", b"E"))
        if integers_only and has_float_syntax:
            return None
        flat = self.text.translate(_BRACKETS_TO_SPACE)
        parse_as = np.float64 if (has_float_syntax or not integers_only) else np.int64
        try:
            values = np.fromstring(flat, dtype=parse_as, sep=",")  # noqa: NPY201 - the C text parser
        except ValueError:
            return None
        if values.size != int(np.prod(self.shape)):
            return None
        if low is not None:
            if values.size and (values.min() < low or values.max() > high or values.max() >= 2**63 - 1):
                return None
        return values.astype(dtype, copy=False).reshape(self.shape)


def _valid_numbers(text: bytes, data: np.ndarray) -> bool:
    """Every number token follows JSON's grammar (no ``.5``, ``1.``, ``+1``, ``01``, ``1e``, ``-``).

    ``text`` starts with ``[`` and ends with ``]``, so no token touches either end.
    """
    digit = (data - np.uint8(48)) < 10
    number = digit | (data == 45)
    floats = any(c in text for c in (b".", b"e", b"E", b"+"))
    if floats:
        number |= (data == 46) | (data == 101) | (data == 69) | (data == 43)
    # A leading zero: a '0' starting a token and followed by a digit.
    if np.any((data[1:-1] == 48) & ~number[:-2] & digit[2:]):
        return False
    if floats:
        return _valid_float_syntax(data, digit, number)
    if b"-" in text:
        minus = data[1:-1] == 45
        if np.any(minus & (number[:-2] | ~digit[2:])):
            return False
        if np.any((data[2:-1] == 48) & minus[:-1] & digit[3:]):  # -01
            return False
    return True


def _valid_float_syntax(data: np.ndarray, digit: np.ndarray, number: np.ndarray) -> bool:
    inner, prev, nxt = data[1:-1], slice(0, -2), slice(2, None)
    dot, minus, plus = inner == 46, inner == 45, inner == 43
    exp = (data == 101) | (data == 69)
    exp_in = exp[1:-1]
    sign_next_ok = digit[2:]
    if np.any(dot & ~(digit[prev] & digit[nxt])):
        return False
    if np.any(exp_in & ~(digit[prev] & (digit[nxt] | (data[2:] == 45) | (data[2:] == 43)))):
        return False
    if np.any((minus | plus) & ~sign_next_ok):
        return False
    if np.any(plus & ~exp[prev]) or np.any(minus & number[prev] & ~exp[prev]):
        return False
    # -01 (a sign that starts the token, then a leading zero)
    return not np.any((data[2:-1] == 48) & (minus & ~number[prev])[:-1] & digit[3:])


def _shape(structure: bytes) -> tuple[int, ...] | None:
    """The shape a dense array with these brackets and commas has (None when not an array)."""
    depth = len(structure) - len(structure.lstrip(b"["))
    if depth == 0:
        return None
    dims = []
    for level in range(1, depth):
        end = structure.find(b"]" * (depth - level + 1))
        if end < 0:
            return None
        dims.append(structure.count(b"]" * (depth - level) + b",", 0, end) + 1)
    dims.append(structure.count(b",", 0, structure.find(b"]")) + 1)
    return tuple(dims)


def _expected(shape: tuple[int, ...]) -> bytes:
    inner = b"[" + b"," * (shape[-1] - 1) + b"]"
    for size in reversed(shape[:-1]):
        inner = b"[" + b",".join([inner] * size) + b"]"
    return inner


def _as_span(body: bytes, data: np.ndarray, start: int, end: int) -> Span | None:
    """The dense array at ``body[start:]`` (a run of allowed bytes ending before ``end``, whose
    tail may close outer lists), or None."""
    structure = body[start:end].translate(None, _NUMBER + _SPACE).rstrip(b",")
    shape = _shape(structure)
    if shape is None:
        return None
    expected = _expected(shape)
    excess = len(structure) - len(expected)
    if excess < 0 or structure[: len(expected)] != expected or structure[len(expected) :].strip(b"]"):
        return None
    last = len(body[start:end].rstrip(b" \t\n\r,")) + start
    for _ in range(excess):  # give back the brackets that close outer lists
        last = body.rfind(b"]", start, last)
    text = body[start:last]
    if not _valid_numbers(text, data[start:last]):
        return None
    return Span(text, shape, start)


def extract_spans(body: bytes) -> tuple[bytes, dict[str, Span], str]:
    """Cut the long numeric arrays out of ``body``.

    Returns:
        ``(remainder, spans, prefix)``: the body with each array replaced by the JSON string
        ``"<prefix><n>"``, the spans by placeholder text, and the placeholder prefix (random per
        call, so no string a client sends can pass for one).
    """
    if len(body) < MIN_SPAN:
        return body, {}, ""
    data = np.frombuffer(body, np.uint8)
    allowed = np.frombuffer(body.translate(_ALLOWED), np.int8)
    edges = np.diff(allowed)
    starts = np.flatnonzero(edges == 1) + 1
    ends = np.flatnonzero(edges == -1) + 1
    if allowed[0]:
        starts = np.concatenate(([0], starts))
    if allowed[-1]:
        ends = np.concatenate((ends, [len(body)]))
    keep = (ends - starts) >= MIN_SPAN
    prefix = "\u0000span" + secrets.token_hex(6) + ":"
    pieces, spans, cursor = [], {}, 0
    for run_start, run_end in zip(starts[keep].tolist(), ends[keep].tolist(), strict=True):
        first = body.find(b"[", run_start, run_end)
        if first < 0 or run_start == 0 or body[run_start - 1] != ord(":") or body[run_start:first].strip():
            continue
        span = _as_span(body, data, first, run_end)
        if span is None:
            continue
        last = first + len(span.text)
        key = f"{prefix}{len(spans)}"
        spans[key] = span
        pieces += [body[cursor:first], b'"\\u0000' + key[1:].encode() + b'"']
        cursor = last
    if not spans:
        return body, {}, ""
    pieces.append(body[cursor:])
    return b"".join(pieces), spans, prefix
