"""Producer/consumer compatibility: structural decision plus property-based counterexamples."""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import pytest
from sagaproof.contracts.compat import is_compatible

OBJ = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}


def _rejects(consumer: Any, value: Any) -> bool:
    return not jsonschema_rs.validator_for(consumer, validate_formats=True).is_valid(value)


@pytest.mark.parametrize(("producer", "consumer"), [
    ({"type": "integer"}, {"type": "number"}),
    ({"type": "string", "format": "uuid"}, {"type": "string"}),
    ({"enum": ["a", "b"]}, {"type": "string", "enum": ["a", "b", "c"]}),
    ({"type": "integer", "minimum": 2, "maximum": 5}, {"type": "integer", "minimum": 0, "exclusiveMaximum": 6}),
    ({**OBJ, "additionalProperties": False}, {**OBJ, "additionalProperties": False}),
    ({"type": "object", "required": ["id", "x"], "properties": {"id": {"type": "string"}, "x": {"type": "integer"}}}, OBJ),
    ({"type": "array", "items": {"type": "integer"}, "maxItems": 3}, {"type": "array", "items": {"type": "number"}}),
    ({"type": ["string", "null"]}, {"anyOf": [{"type": "string"}, {"type": "null"}]}),
    ({"oneOf": [{"type": "object", "required": ["k"], "properties": {"k": {"const": "a"}}},
                {"type": "object", "required": ["k"], "properties": {"k": {"const": "b"}}}]},
     {"type": "object", "required": ["k"], "properties": {"k": {"enum": ["a", "b"]}}}),
])
def test_compatible_pairs(producer: Any, consumer: Any) -> None:
    v = is_compatible(producer, consumer)
    assert v.status == "ok", v


@pytest.mark.parametrize(("producer", "consumer", "path"), [
    ({"type": "object"}, {"type": "object", "required": ["id"]}, "/required"),
    (OBJ, {**OBJ, "required": ["orderId"]}, "/required"),
    ({"type": "number"}, {"type": "integer"}, "/type"),
    ({"type": ["string", "null"]}, {"type": "string"}, "/type"),
    ({"type": "string", "enum": ["a", "b", "c"]}, {"enum": ["a", "b"]}, "/enum"),
    ({"type": "integer", "minimum": 1, "maximum": 10}, {"type": "integer", "maximum": 5}, "/maximum"),
    ({"type": "string"}, {"type": "string", "format": "date-time"}, "/format"),
    ({"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 3}, "/maxLength"),
    (OBJ, {**OBJ, "additionalProperties": False}, "/additionalProperties"),
    ({"type": "array", "items": {"type": "integer"}}, {"type": "array", "uniqueItems": True}, "/uniqueItems"),
    ({"type": "object", "required": ["items"], "properties": {"items": {"type": "array", "items": {
        "type": "object", "required": ["sku"], "properties": {"sku": {"type": "string"}}}}}},
     {"type": "object", "properties": {"items": {"type": "array", "items": {
         "type": "object", "required": ["sku", "qty"]}}}}, "/properties/items/items/required"),
])
def test_incompatible_pairs_have_real_small_counterexamples(producer: Any, consumer: Any, path: str) -> None:
    v = is_compatible(producer, consumer)
    assert v.status == "incompatible", v
    assert v.has_counterexample
    assert jsonschema_rs.validator_for(producer, validate_formats=True).is_valid(v.counterexample)
    assert _rejects(consumer, v.counterexample)
    assert v.consumer_path == path
    assert len(repr(v.counterexample)) < 200  # shrunk
    assert v.reason


def test_counterexample_is_deterministic() -> None:
    a = is_compatible(OBJ, {**OBJ, "required": ["id", "n"], "properties": {**OBJ["properties"], "n": {"type": "integer"}}})
    b = is_compatible(OBJ, {**OBJ, "required": ["id", "n"], "properties": {**OBJ["properties"], "n": {"type": "integer"}}})
    assert a.counterexample == b.counterexample and a.status == "incompatible"


def test_outside_the_subset_is_decided_by_search() -> None:
    # 'not' is outside the structural subset; the search finds "x" quickly.
    v = is_compatible({"type": "string"}, {"type": "string", "not": {"const": ""}})
    assert v.status == "incompatible" and _rejects({"type": "string", "not": {"const": ""}}, v.counterexample)
    # Compatible but not provable structurally: unknown, never "incompatible" without a witness.
    v = is_compatible({"type": "string", "pattern": "^a"}, {"type": "string", "pattern": "^[ab]"})
    assert v.status in ("ok", "unknown")


def test_reasons_write_numbers_and_patterns_as_json() -> None:
    v = is_compatible({"type": "number"}, {"type": "number", "minimum": 1.0}, confirm_examples=0)
    assert v.status == "incompatible" and "minimum 1" in v.reason and "1.0" not in v.reason, v.reason
    v = is_compatible({"type": "string"}, {"type": "string", "maxLength": 3.0}, confirm_examples=0)
    assert "maxLength 3" in v.reason and "3.0" not in v.reason, v.reason
