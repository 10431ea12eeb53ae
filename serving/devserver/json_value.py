"""JSON documents as TF Serving's REST layer reads and quotes them (rapidjson's rules).

``parse_json`` follows json_tensor.cc's ParseJson: ``kParseNanAndInfFlag`` (NaN and Infinity are
numbers), ``kParseStopWhenDoneFlag`` (anything after the first JSON value is ignored) and
rapidjson's ``FindMember``, which returns the first of duplicate keys (first wins). Long numeric
arrays are cut out first by :mod:`json_numeric` and come back as :class:`Span` values.
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from serving.devserver.json_numeric import Span, extract_spans
from serving.devserver.status import invalid_argument

# Python's json messages -> rapidjson's GetParseError_En texts.
_PARSE_ERRORS = {
    "Expecting value": "Invalid value.",
    "Expecting property name enclosed in double quotes": "Missing a name for object member.",
    "Expecting ':' delimiter": "Missing a colon after a name of object member.",
    "Expecting ',' delimiter": "Missing a comma or '}' after an object member.",
    "Unterminated string starting at": "Missing a closing quotation mark in string.",
    "Invalid control character at": "Invalid encoding in string.",
    "Invalid \\escape": "Invalid escape character in string.",
}


def json_type(value: Any) -> str:
    """rapidjson's type name of a value."""
    if value is None:
        return "Null"
    if value is True:
        return "True"
    if value is False:
        return "False"
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list | Span):
        return "Array"
    if isinstance(value, str):
        return "String"
    return "Number"


def _plain(value: Any) -> Any:
    if isinstance(value, Span):
        return value.materialize()
    raise TypeError(type(value).__name__)


def json_text(value: Any) -> str:
    """A JSON value as TF Serving quotes it in error messages."""
    if isinstance(value, float):
        return format_decimal(value, double=True)
    return json.dumps(value, indent=4, ensure_ascii=False, allow_nan=True, default=_plain)


def format_decimal(value: float, *, double: bool = False) -> str:
    """TF Serving's WriteDecimal: shortest ``%g`` form that round-trips, ``.0`` on whole numbers."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "-Infinity" if value < 0 else "Infinity"
    text = f"{value:g}"
    if double:
        if float(text) != value:
            text = f"{value:.17g}"
    elif np.float32(text) != np.float32(value):
        text = f"{value:.9g}"
    if "." not in text and "e" not in text:
        text += ".0"
    return text


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic GC while millions of small lists are built (it would run over and over)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_error(err: json.JSONDecodeError) -> str:
    message = _PARSE_ERRORS.get(err.msg, err.msg)
    return f"JSON Parse error: {message} at offset: {err.pos}"


def parse_json(body: bytes) -> dict:
    """Parse a request body as a JSON object, the way json_tensor.cc's ParseJson does.

    Raises:
        ServingError: INVALID_ARGUMENT with rapidjson's texts.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as err:
        message = f"JSON Parse error: Invalid encoding in string. at offset: {err.start}"
        raise invalid_argument(message) from err
    start = len(text) - len(text.lstrip(" \t\n\r"))
    if start == len(text):
        raise invalid_argument("JSON Parse error: The document is empty")
    remainder, spans, prefix = extract_spans(body)

    def first_wins(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in pairs:
            if key not in out:
                out[key] = spans.get(value, value) if prefix and isinstance(value, str) else value
        return out

    decoder = json.JSONDecoder(object_pairs_hook=first_wins)
    with gc_paused():
        try:
            if spans:
                small = remainder.decode("utf-8")
                doc, _ = decoder.raw_decode(small, len(small) - len(small.lstrip(" \t\n\r")))
            else:
                doc, _ = decoder.raw_decode(text, start)
        except json.JSONDecodeError as err:
            if not spans:
                raise invalid_argument(_parse_error(err)) from err
            try:  # report the error against the body the client sent
                decoder.raw_decode(text, start)
            except json.JSONDecodeError as exact:
                raise invalid_argument(_parse_error(exact)) from exact
            raise invalid_argument(_parse_error(err)) from err
    if not isinstance(doc, dict):
        raise invalid_argument(f"JSON Value: {json_text(doc)} Is not object")
    return doc


def signature_name(doc: dict) -> str:
    """FillSignature: the request's ``signature_name`` ("" when absent).

    Raises:
        ServingError: INVALID_ARGUMENT when it is not a string.
    """
    signature = doc.get("signature_name", "")
    if not isinstance(signature, str):
        raise invalid_argument(
            f"JSON Value: {json_text(doc)} not formatted correctly. 'signature_name' key must "
            "be a string value."
        )
    return signature


def render_error(message: str) -> str:
    """MakeJsonFromStatus: ``{"error": message}`` as rapidjson's pretty writer prints it."""
    return '{\n    "error": ' + json.dumps(message, ensure_ascii=False) + "\n}"
