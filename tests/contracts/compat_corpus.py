"""A producer/consumer compatibility corpus written from the JSON Schema 2020-12 and draft-07 specifications.

Each base entry is ``(keyword, narrow, wide)``: every value valid under ``narrow`` is valid under ``wide``
(read off the specification's definition of the keyword, not off sagaproof's engine). Each entry is used in
both roles: producer ``narrow`` / consumer ``wide`` (must never be shown incompatible) and producer ``wide`` /
consumer ``narrow`` (a real break when ``wide`` is strictly wider, which every entry here is unless listed
in ``EQUIVALENT``). Each entry is also placed in several contexts (top level, a required property, array
items, behind a ``$ref`` into ``$defs``), so the corpus holds several hundred pairs.

``PAIRS`` is the list of ``(name, producer, consumer)`` the tests use.
"""

from __future__ import annotations

from typing import Any

D7 = "http://json-schema.org/draft-07/schema#"
D2020 = "https://json-schema.org/draft/2020-12/schema"

S = {"type": "string"}
I = {"type": "integer"}  # noqa: E741
N = {"type": "number"}
O = {"type": "object"}  # noqa: E741
A = {"type": "array"}


def obj(props: dict[str, Any], req: list[str] | None = None, **kw: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object", "properties": props, **kw}
    if req:
        out["required"] = req
    return out


BASE: list[tuple[str, Any, Any]] = [
    # type, integer vs number, booleans as schemas
    ("type", I, N),
    ("type", S, {"type": ["string", "null"]}),
    ("type", {"type": "null"}, {"type": ["null", "boolean"]}),
    ("type", {"type": "boolean"}, True),
    ("type", N, {"type": ["number", "string"]}),
    ("type", {"type": ["integer", "string"]}, {"type": ["number", "string"]}),
    ("boolean-schema", False, I),
    ("boolean-schema", S, True),
    ("boolean-schema", False, True),
    # numbers
    ("minimum", {"type": "integer", "minimum": 5}, {"type": "integer", "minimum": 1}),
    ("maximum", {"type": "number", "maximum": 5}, {"type": "number", "maximum": 10.5}),
    ("exclusiveMinimum", {"type": "number", "exclusiveMinimum": 0}, {"type": "number", "minimum": 0}),
    ("exclusiveMaximum", {"type": "number", "exclusiveMaximum": 10}, {"type": "number", "maximum": 10}),
    ("exclusiveMaximum", {"type": "integer", "maximum": 9}, {"type": "integer", "exclusiveMaximum": 10.5}),
    ("exclusiveMinimum", {"type": "integer", "exclusiveMinimum": 0}, {"type": "integer", "minimum": -3}),
    ("minimum", {"type": "number", "minimum": 0, "maximum": 1}, {"type": "number", "minimum": -1, "maximum": 2}),
    ("multipleOf", {"type": "integer", "multipleOf": 4}, {"type": "integer", "multipleOf": 2}),
    ("multipleOf", {"type": "number", "multipleOf": 0.5}, {"type": "number", "multipleOf": 0.25}),
    ("multipleOf", I, {"type": "number", "multipleOf": 0.5}),
    ("multipleOf", {"type": "number", "multipleOf": 10}, {"type": "number", "multipleOf": 5}),
    ("integer", {"type": "number", "multipleOf": 1}, N),
    ("integer", {"type": "integer", "minimum": 0}, {"type": "number", "minimum": 0}),
    # strings
    ("minLength", {"type": "string", "minLength": 3}, {"type": "string", "minLength": 1}),
    ("maxLength", {"type": "string", "maxLength": 3}, {"type": "string", "maxLength": 8}),
    ("maxLength", {"type": "string", "minLength": 2, "maxLength": 4}, {"type": "string", "maxLength": 4}),
    ("pattern", {"type": "string", "pattern": "^[a-z]{3}$"}, {"type": "string", "maxLength": 3}),
    ("pattern", {"type": "string", "pattern": "^[0-9]{4}$"}, {"type": "string", "minLength": 4}),
    ("pattern", {"type": "string", "pattern": "^ab", "minLength": 2}, S),
    ("pattern", {"type": "string", "pattern": "^x-[a-z]+$", "maxLength": 64}, {"type": "string", "pattern": "^x-[a-z]+$"}),
    ("format", {"type": "string", "format": "date-time"}, S),
    ("format", {"type": "string", "format": "uuid"}, {"type": "string", "minLength": 1}),
    ("format", {"type": "string", "format": "email", "maxLength": 50}, {"type": "string", "format": "email"}),
    ("format", {"type": "string", "format": "date"}, {"type": ["string", "null"]}),
    ("format", {"type": "string", "format": "ipv4"}, S),
    # const / enum
    ("const", {"const": "a"}, {"enum": ["a", "b"]}),
    ("const", {"const": 1}, I),
    ("enum", {"enum": ["a", "b"]}, {"enum": ["a", "b", "c"]}),
    ("enum", {"enum": [1, 2]}, {"type": "integer", "minimum": 1}),
    ("enum", {"type": "string", "enum": ["x", "y"]}, {"type": "string", "maxLength": 1}),
    ("enum", {"enum": [None, "a"]}, {"type": ["string", "null"]}),
    ("const", {"const": {"k": 1}}, O),
    ("enum", {"enum": [[1], [2]]}, {"type": "array", "items": I}),
    # not
    ("not", {"not": N}, {"not": I}),
    ("not", S, {"not": N}),
    ("not", {"type": "string", "not": {"const": ""}}, S),
    ("not", {"type": "integer", "minimum": 1}, {"not": {"const": 0}}),
    ("not", {"not": {"type": ["string", "number"]}}, {"not": S}),
    ("not", {"type": "string", "minLength": 1}, {"type": "string", "not": {"maxLength": 0}}),
    # allOf / anyOf / oneOf
    ("allOf", {"allOf": [O, {"required": ["a"]}]}, O),
    ("allOf", {"allOf": [{"type": "integer"}, {"minimum": 0}]}, {"type": "integer", "minimum": -1}),
    ("allOf", obj({"a": I}, ["a"]), {"allOf": [O, {"required": ["a"]}]}),
    ("anyOf", S, {"anyOf": [S, I]}),
    ("anyOf", {"anyOf": [S, I]}, {"anyOf": [S, N]}),
    ("anyOf", {"anyOf": [{"const": 1}, {"const": "a"}]}, {"type": ["integer", "string"]}),
    ("oneOf", {"type": "string"}, {"oneOf": [S, I]}),
    ("oneOf", {"oneOf": [S, I]}, {"anyOf": [S, I]}),
    ("oneOf", {"type": "integer", "minimum": 10}, {"oneOf": [{"type": "integer", "minimum": 5},
                                                             {"type": "integer", "maximum": 0}]}),
    ("oneOf", {"oneOf": [obj({"k": {"const": "a"}}, ["k"]), obj({"k": {"const": "b"}}, ["k"])]},
     obj({"k": {"enum": ["a", "b", "c"]}}, ["k"])),
    # if / then / else
    ("if", obj({"kind": {"const": "card"}, "last4": S}, ["kind", "last4"]),
     {"type": "object", "if": obj({"kind": {"const": "card"}}, ["kind"]), "then": {"required": ["last4"]}}),
    ("if", {"type": "integer", "minimum": 0},
     {"if": {"minimum": 0}, "then": {"type": "integer"}, "else": {"type": "string"}}),
    ("if", {"type": "string", "maxLength": 50}, {"if": S, "then": {"maxLength": 100}, "else": I}),
    ("if", {"if": I, "then": {"minimum": 1}, "else": S}, {"type": ["integer", "string"]}),
    ("if", obj({"a": I}, ["a"], additionalProperties=False),
     {"type": "object", "if": {"required": ["b"]}, "then": {"required": ["c"]}}),
    # object: properties, required, additionalProperties
    ("required", obj({"a": I, "b": S}, ["a", "b"]), obj({"a": I, "b": S}, ["a"])),
    ("required", obj({"id": S}, ["id"]), O),
    ("properties", obj({"a": I}, ["a"]), obj({"a": N}, ["a"])),
    ("properties", obj({"a": {"type": "string", "maxLength": 3}}), obj({"a": S})),
    ("additionalProperties", obj({"a": I}, ["a"], additionalProperties=False), obj({"a": I}, ["a"])),
    ("additionalProperties", obj({"a": I}, additionalProperties=False), obj({"a": I, "b": S}, additionalProperties=False)),
    ("additionalProperties", obj({"a": I}, additionalProperties=I), obj({"a": I}, additionalProperties=N)),
    ("additionalProperties", obj({}, additionalProperties=S), {"type": "object", "additionalProperties": {"type": ["string", "null"]}}),
    ("additionalProperties", obj({"a": I, "b": I}, ["a"], additionalProperties=False),
     obj({"a": I}, ["a"], additionalProperties=I)),
    # patternProperties
    ("patternProperties", {"type": "object", "patternProperties": {"^x-": S}, "additionalProperties": False},
     {"type": "object", "patternProperties": {"^x-": {"type": ["string", "integer"]}}}),
    ("patternProperties", {"type": "object", "patternProperties": {"^n_": I}, "additionalProperties": False},
     {"type": "object", "additionalProperties": N}),
    ("patternProperties", obj({"id": S}, ["id"], patternProperties={"^x-": S}, additionalProperties=I),
     obj({"id": S}, ["id"], patternProperties={"^x-": S}, additionalProperties=N)),
    ("patternProperties", obj({"id": S, "x-a": S}, ["id"], patternProperties={"^x-": S}, additionalProperties=False),
     obj({"id": S}, ["id"], patternProperties={"^x-": S}, additionalProperties={"type": "string"})),
    ("patternProperties", {"type": "object", "patternProperties": {"^a": {"type": "integer", "minimum": 0}}},
     {"type": "object", "patternProperties": {"^a": I}}),
    # unevaluatedProperties
    ("unevaluatedProperties", obj({"a": I}, ["a"], unevaluatedProperties=False), obj({"a": I, "b": S}, ["a"], unevaluatedProperties=False)),
    ("unevaluatedProperties", {"allOf": [obj({"a": I}, ["a"])], "unevaluatedProperties": False},
     {"allOf": [obj({"a": I})], "properties": {"b": S}, "unevaluatedProperties": False}),
    ("unevaluatedProperties", obj({"a": I}, ["a"], additionalProperties=False), obj({"a": I}, unevaluatedProperties={"type": "string"})),
    ("unevaluatedProperties", obj({"a": S}, unevaluatedProperties=I), obj({"a": S}, unevaluatedProperties=N)),
    # min/maxProperties
    ("maxProperties", {"type": "object", "maxProperties": 1}, {"type": "object", "maxProperties": 2}),
    ("minProperties", {"type": "object", "minProperties": 2}, {"type": "object", "minProperties": 1}),
    ("minProperties", obj({"a": I, "b": I}, ["a", "b"]), {"type": "object", "minProperties": 2}),
    ("maxProperties", obj({"a": I, "b": I}, additionalProperties=False), {"type": "object", "maxProperties": 2}),
    ("maxProperties", {"type": "object", "minProperties": 1, "maxProperties": 1}, {"type": "object", "minProperties": 1}),
    # propertyNames
    ("propertyNames", {"type": "object", "propertyNames": {"maxLength": 3}}, {"type": "object", "propertyNames": {"maxLength": 5}}),
    ("propertyNames", {"type": "object", "propertyNames": {"enum": ["a", "b"]}}, {"type": "object", "propertyNames": {"pattern": "^[a-z]$"}}),
    ("propertyNames", obj({"ab": I}, additionalProperties=False), {"type": "object", "propertyNames": {"maxLength": 2}}),
    ("propertyNames", {"type": "object", "propertyNames": {"pattern": "^a"}}, O),
    # dependentRequired / dependentSchemas
    ("dependentRequired", obj({"a": I, "b": I}, ["a", "b"]), {"type": "object", "dependentRequired": {"a": ["b"]}}),
    ("dependentRequired", {"type": "object", "dependentRequired": {"a": ["b", "c"]}}, {"type": "object", "dependentRequired": {"a": ["b"]}}),
    ("dependentRequired", obj({"b": I}, additionalProperties=False), {"type": "object", "dependentRequired": {"a": ["b"]}}),
    ("dependentRequired", {"type": "object", "dependentRequired": {"a": ["b"]}}, O),
    ("dependentSchemas", {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}},
     {"type": "object", "dependentRequired": {"a": ["b"]}}),
    ("dependentSchemas", {"type": "object", "dependentSchemas": {"a": obj({"b": I}, ["b"])}},
     {"type": "object", "dependentSchemas": {"a": obj({"b": N}, ["b"])}}),
    ("dependentSchemas", obj({"a": I, "b": S}, ["a", "b"]), {"type": "object", "dependentSchemas": {"a": {"required": ["b"]}}}),
    ("dependentSchemas", {"type": "object", "dependentSchemas": {"a": {"maxProperties": 2}}}, O),
    # arrays
    ("items", {"type": "array", "items": I}, {"type": "array", "items": N}),
    ("items", {"type": "array", "items": S}, A),
    ("items", {"type": "array", "items": obj({"sku": S}, ["sku", "qty"])}, {"type": "array", "items": obj({"sku": S}, ["sku"])}),
    ("minItems", {"type": "array", "minItems": 2}, {"type": "array", "minItems": 1}),
    ("maxItems", {"type": "array", "maxItems": 2}, {"type": "array", "maxItems": 5}),
    ("maxItems", {"type": "array", "items": I, "minItems": 1, "maxItems": 1}, {"type": "array", "maxItems": 1}),
    ("uniqueItems", {"type": "array", "uniqueItems": True}, A),
    ("uniqueItems", {"type": "array", "maxItems": 1}, {"type": "array", "uniqueItems": True}),
    ("prefixItems", {"type": "array", "prefixItems": [S, I], "items": False}, {"type": "array", "prefixItems": [S, N]}),
    ("prefixItems", {"type": "array", "prefixItems": [S, I]}, {"type": "array", "prefixItems": [S]}),
    ("prefixItems", {"type": "array", "prefixItems": [S], "items": I}, {"type": "array", "prefixItems": [S], "items": N}),
    ("prefixItems", {"type": "array", "prefixItems": [S, I], "items": False},
     {"type": "array", "prefixItems": [S, I, {"type": "boolean"}], "items": False}),
    ("prefixItems", {"type": "array", "prefixItems": [I, I], "items": False, "minItems": 2}, {"type": "array", "items": I}),
    ("unevaluatedItems", {"type": "array", "prefixItems": [S], "unevaluatedItems": False},
     {"type": "array", "prefixItems": [S], "unevaluatedItems": I}),
    ("unevaluatedItems", {"type": "array", "items": I}, {"type": "array", "unevaluatedItems": N}),
    ("contains", {"type": "array", "contains": {"const": 1}}, {"type": "array", "contains": I}),
    ("contains", {"type": "array", "items": I, "minItems": 1}, {"type": "array", "contains": N}),
    ("minContains", {"type": "array", "contains": I, "minContains": 3}, {"type": "array", "contains": I, "minContains": 2}),
    ("maxContains", {"type": "array", "contains": I, "maxContains": 1}, {"type": "array", "contains": I, "maxContains": 2}),
    ("maxContains", {"type": "array", "items": S}, {"type": "array", "contains": I, "minContains": 0, "maxContains": 1}),
    ("maxContains", {"type": "array", "maxItems": 2}, {"type": "array", "contains": I, "minContains": 0, "maxContains": 2}),
    ("contains", {"type": "array", "prefixItems": [{"const": "h"}], "minItems": 1}, {"type": "array", "contains": {"const": "h"}}),
]

# draft-07 entries: array-form items with additionalItems, dependencies, definitions.
BASE_07: list[tuple[str, Any, Any]] = [
    ("items-array", {"type": "array", "items": [S, I], "additionalItems": False},
     {"type": "array", "items": [S, N], "additionalItems": False}),
    ("items-array", {"type": "array", "items": [S, I], "additionalItems": False}, {"type": "array", "items": [S]}),
    ("additionalItems", {"type": "array", "items": [S], "additionalItems": I}, {"type": "array", "items": [S], "additionalItems": N}),
    ("additionalItems", {"type": "array", "items": I}, {"type": "array", "items": N, "additionalItems": False}),
    ("additionalItems", {"type": "array", "items": [S, S], "additionalItems": False}, {"type": "array", "maxItems": 2}),
    ("dependencies", {"type": "object", "dependencies": {"a": ["b", "c"]}}, {"type": "object", "dependencies": {"a": ["b"]}}),
    ("dependencies", {"type": "object", "dependencies": {"a": {"required": ["b"], "properties": {"b": I}}}},
     {"type": "object", "dependencies": {"a": ["b"]}}),
    ("dependencies", obj({"a": I, "b": I}, ["a", "b"]), {"type": "object", "dependencies": {"a": {"properties": {"b": N}}}}),
    ("contains", {"type": "array", "contains": {"const": 2}}, {"type": "array", "contains": I}),
    ("exclusiveMinimum", {"type": "number", "exclusiveMinimum": 1}, {"type": "number", "minimum": 1}),
    ("definitions", {"definitions": {"n": I}, "type": "array", "items": {"$ref": "#/definitions/n"}},
     {"definitions": {"n": N}, "type": "array", "items": {"$ref": "#/definitions/n"}}),
    ("if", obj({"t": {"const": "a"}, "x": I}, ["t", "x"]),
     {"type": "object", "if": obj({"t": {"const": "a"}}), "then": {"required": ["x"]}}),
]

# $ref / $defs / $anchor within one document (across files: tests/contracts/test_cloudevents.py).
BASE_REF: list[tuple[str, Any, Any]] = [
    ("$ref", {"$defs": {"id": {"type": "string", "minLength": 3}}, "type": "object", "required": ["id"],
              "properties": {"id": {"$ref": "#/$defs/id"}}},
     {"$defs": {"id": {"type": "string", "minLength": 1}}, "type": "object", "required": ["id"],
      "properties": {"id": {"$ref": "#/$defs/id"}}}),
    ("$anchor", {"$defs": {"m": {"$anchor": "money", "type": "integer", "minimum": 0}}, "type": "array",
                 "items": {"$ref": "#money"}},
     {"$defs": {"m": {"$anchor": "money", "type": "number"}}, "type": "array", "items": {"$ref": "#money"}}),
    ("$ref", {"$defs": {"a": {"$ref": "#/$defs/b"}, "b": I}, "$ref": "#/$defs/a"},
     {"$defs": {"x": N}, "$ref": "#/$defs/x"}),
    ("$id", {"$defs": {"s": {"$id": "urn:ex:s", "type": "string", "maxLength": 2}}, "$ref": "urn:ex:s"},
     {"$defs": {"s": {"$id": "urn:ex:t", "type": "string", "maxLength": 5}}, "$ref": "urn:ex:t"}),
]

# Entries whose two schemas accept the very same values (both directions are compatible).
EQUIVALENT = {
    ("integer", 0),  # number with multipleOf 1 is integer
    ("not", 5),  # a string not of maxLength 0 has minLength 1
    ("oneOf", 1),  # oneOf of disjoint branches is their anyOf
    ("if", 1),  # strings pass `if: {minimum: 0}`, so must be integers: only integers >= 0 remain
    ("dependentSchemas", 0),  # dependentSchemas {a: {required: [b]}} is dependentRequired {a: [b]}
}

# Entries whose narrow schema is `false` (no message at all): nothing can be generated from it.
EMPTY_PRODUCERS = {"boolean-schema#0", "boolean-schema#2"}


def _wrap(schema: Any, how: str, defs_key: str) -> Any:
    if how == "top":
        return schema
    if how == "property":
        return {"type": "object", "required": ["v"], "properties": {"v": schema}}
    if how == "items":
        return {"type": "array", "items": schema}
    if how == "ref":
        return {defs_key: {"t": schema}, "type": "object", "required": ["v"],
                "properties": {"v": {"$ref": f"#/{defs_key}/t"}}}
    raise ValueError(how)


def _hoist(schema: Any) -> tuple[Any, dict[str, Any]]:
    """Move a nested schema's $defs to the root (so that its #/$defs/... pointers keep working)."""
    if isinstance(schema, dict) and ("$defs" in schema or "definitions" in schema):
        defs = {**schema.get("$defs", {}), **schema.get("definitions", {})}
        return {k: v for k, v in schema.items() if k not in ("$defs", "definitions")}, defs
    return schema, {}


def _place(schema: Any, how: str, dialect: str | None) -> Any:
    defs_key = "definitions" if dialect == D7 else "$defs"
    if how == "top":
        out = schema
    else:
        inner, defs = _hoist(schema)
        out = _wrap(inner, how, defs_key)
        if defs:
            out = {**out, defs_key: {**out.get(defs_key, {}), **defs}}
    if dialect and isinstance(out, dict):
        out = {"$schema": dialect, **out}
    elif dialect and out is True:
        out = {"$schema": dialect}
    elif dialect and out is False:
        out = {"$schema": dialect, "not": {}}
    return out


def build() -> list[tuple[str, Any, Any, str]]:
    """(name, producer, consumer, role) with role ``narrow`` (producer narrower) or ``wide``."""
    out: list[tuple[str, Any, Any, str]] = []
    groups = [(BASE, None, ("top", "property", "items", "ref")), (BASE_07, D7, ("top", "property", "items")),
              (BASE_REF, D2020, ("top", "property"))]
    counters: dict[str, int] = {}
    for entries, dialect, contexts in groups:
        for kw, narrow, wide in entries:
            idx = counters.get(kw, 0)
            counters[kw] = idx + 1
            for how in contexts:
                if how == "ref" and (isinstance(narrow, bool) or isinstance(wide, bool)):
                    continue
                p, c = _place(narrow, how, dialect), _place(wide, how, dialect)
                name = f"{kw}#{idx}@{how}" + ("/07" if dialect == D7 else "")
                out.append((name + "/narrow", p, c, "narrow"))
                if (kw, idx) not in EQUIVALENT:
                    out.append((name + "/wide", c, p, "wide"))
    return out


PAIRS = build()
