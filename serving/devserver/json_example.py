"""REST JSON for Classify and Regress: ``examples`` (and ``context``) as tf.Example features, and
the ``results`` answers (json_tensor.cc's FillClassificationRequestFromJson,
MakeJsonFromClassificationResult and MakeJsonFromRegressionResult, with their texts).

A feature value is a JSON value or a list of them: strings and ``{"b64": ...}`` are bytes, JSON
integers and booleans int64, other numbers float; one feature holds one kind.
"""

from __future__ import annotations

import json
from typing import Any

from serving.devserver.json_numeric import Span
from serving.devserver.json_tensor import decode_b64
from serving.devserver.json_value import format_decimal, json_text, json_type, parse_json, signature_name
from serving.devserver.status import invalid_argument

_KINDS = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}


def _add_value(value: Any, name: str, feature: Any) -> None:
    """AddValueToFeature."""

    def need(kind: str) -> Any:
        current = feature.WhichOneof("kind")
        if current not in (None, kind):
            raise invalid_argument(
                f"Unexpected element type in feature: {name} expecting type: {_KINDS[current]}"
            )
        return getattr(feature, kind)

    if value is None or isinstance(value, list):
        raise invalid_argument(f"Feature: {name} has element with unexpected JSON type: {json_type(value)}")
    if isinstance(value, bool):
        need("int64_list").value.append(int(value))
    elif isinstance(value, dict):
        if not (len(value) == 1 and isinstance(value.get("b64"), str)):
            raise invalid_argument(
                f"Feature: {name} has element with unexpected JSON type: {json_type(value)}"
            )
        need("bytes_list").value.append(decode_b64(value))
    elif isinstance(value, str):
        need("bytes_list").value.append(value.encode("utf-8"))
    elif isinstance(value, float):
        need("float_list").value.append(value)
    else:
        if value >= 2**63:
            raise invalid_argument(f"Feature: {name} has uint64_t element. Only int64_t is supported.")
        need("int64_list").value.append(value)


def _example(value: Any, out: Any) -> None:
    """MakeExampleFromJsonObject."""
    if not isinstance(value, dict):
        raise invalid_argument(f"Example must be JSON object but got JSON {json_type(value)}")
    for name, content in value.items():
        feature = out.features.feature[name]
        feature.Clear()
        if isinstance(content, Span):
            content = content.materialize()
        for item in content if isinstance(content, list) else [content]:
            _add_value(item, name, feature)


def fill_request_from_json(body: bytes, request: Any) -> None:
    """FillClassifyRegressRequestFromJson: the signature, context and examples of a request.

    Raises:
        ServingError: INVALID_ARGUMENT with json_tensor.cc's texts.
    """
    doc = parse_json(body)
    signature = signature_name(doc)
    request.model_spec.signature_name = signature
    has_context = "context" in doc
    if has_context:
        _example(doc["context"], request.input.example_list_with_context.context)
    if "examples" not in doc:
        raise invalid_argument(
            f"JSON Value: {json_text(doc)} When method is classify, key 'examples' is expected and "
            "was not found"
        )
    examples = doc["examples"]
    if isinstance(examples, Span):
        examples = examples.materialize()
    if not isinstance(examples, list):
        raise invalid_argument(f"JSON Value: {json_text(doc)} Expecting 'examples' value to be an list/array")
    if not examples:
        raise invalid_argument(f"JSON Value: {json_text(doc)} 'examples' value is an empty array")
    target = (
        request.input.example_list_with_context.examples
        if has_context
        else request.input.example_list.examples
    )
    for value in examples:
        _example(value, target.add())


def render_classification(result: Any) -> str:
    """MakeJsonFromClassificationResult: ``{"results": [[[label, score], ...], ...]}``."""
    if not result.classifications:
        raise invalid_argument("Cannot convert empty ClassificationResults to JSON")
    rows = []
    for classifications in result.classifications:
        pairs = ", ".join(
            f"[{json.dumps(c.label, ensure_ascii=False)}, {format_decimal(c.score)}]"
            for c in classifications.classes
        )
        rows.append(f"        [{pairs}]")
    return '{\n    "results": [\n' + ",\n".join(rows) + "\n    ]\n}"


def render_regression(result: Any) -> str:
    """MakeJsonFromRegressionResult: ``{"results": [value, ...]}``."""
    if not result.regressions:
        raise invalid_argument("Cannot convert empty RegressionResults to JSON")
    values = ", ".join(format_decimal(r.value) for r in result.regressions)
    return '{\n    "results": [' + values + "]\n}"
