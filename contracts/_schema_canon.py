"""Schema compatibility, part 1: the verdict type and the canonical form both drafts are read into
(:mod:`sagaproof.contracts.compat` is the engine's face)."""


from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

Status = Literal["ok", "incompatible", "unknown"]

# Keywords that never constrain a value: annotations, identifiers, and definitions (every $ref is inlined
# before the proof sees a schema). Vendor extensions (x-...) are annotations too, see _inert().
_ANNOT = {"title", "description", "$comment", "examples", "example", "deprecated", "readOnly", "writeOnly",
          "default", "$schema", "$id", "$anchor", "$dynamicAnchor", "discriminator", "x-parser-schema-id",
          "contentMediaType", "contentEncoding", "contentSchema", "externalDocs", "$defs", "definitions",
          "$vocabulary", "$recursiveAnchor"}
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_NUMKW = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
_STRKW = {"minLength", "maxLength", "pattern", "format"}
_ARRKW = {"items", "prefixItems", "minItems", "maxItems", "uniqueItems", "contains", "minContains", "maxContains"}
_OBJKW = {"properties", "patternProperties", "additionalProperties", "required", "minProperties", "maxProperties",
          "propertyNames", "dependentRequired", "dependentSchemas"}
_APPL = {"allOf", "anyOf", "oneOf", "not", "if", "then", "else"}
# Keywords of the 2019-09/2020-12 vocabularies a draft-07 validator ignores (and the reverse).
_NOT_IN_07 = {"prefixItems", "unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains",
              "dependentRequired", "dependentSchemas", "$anchor", "$dynamicRef", "$recursiveRef"}
# Formats both validators assert (python-jsonschema with its format extras); others are annotations.
# Lengths every string of a format has (both validators check these formats strictly).
_FORMAT_LENGTH: dict[str, tuple[int, int | None]] = {"uuid": (36, 36), "date": (10, 10), "ipv4": (7, 15)}
_FORMATS = {"date", "date-time", "time", "duration", "email", "idn-email", "hostname", "idn-hostname", "ipv4",
            "ipv6", "uri", "uri-reference", "iri", "iri-reference", "uuid", "regex", "json-pointer",
            "relative-json-pointer", "uri-template"}


def _inert(key: str) -> bool:
    """True for a keyword that does not constrain the value (an annotation or an x- extension)."""
    return key in _ANNOT or key.startswith("x-")


@dataclass
class Verdict:
    """The answer to "does the consumer accept every message the producer may send?".

    Attributes:
        status: ``ok`` (proven), ``incompatible`` (with a counterexample both validators agree on) or
            ``unknown`` (undecided: neither a proof nor a counterexample).
        counterexample: a small message valid for the producer and rejected by the consumer.
        consumer_path: JSON pointer into the consumer schema: of the keyword that rejects the
            counterexample, or (undecided) of the keyword at which the proof stopped.
        instance_path: JSON pointer into the counterexample of the rejected value.
        reason: one sentence saying why.
        keyword: the consumer keyword that rejects the counterexample or stopped the proof.
    """

    status: Status
    counterexample: Any = None
    consumer_path: str = ""
    instance_path: str = ""
    reason: str = ""
    has_counterexample: bool = False
    keyword: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def label(self) -> str:
        """``compatible``, ``incompatible`` or ``undecided``."""
        return {"ok": "compatible", "incompatible": "incompatible"}.get(self.status, "undecided")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "verdict": self.label, "reason": self.reason,
                             "keyword": self.keyword, "consumer_path": self.consumer_path,
                             "instance_path": self.instance_path}
        if self.has_counterexample:
            d["counterexample"] = self.counterexample
        return d


# ----------------------------------------------------------------------------- canonical form


def _dialect(schema: Any) -> str:
    s = schema.get("$schema", "") if isinstance(schema, dict) else ""
    if not isinstance(s, str):
        return "2020"
    if "draft-0" in s:
        return "07"
    if "2019-09" in s:
        return "2019"
    return "2020"


def _has_applicators(s: dict[str, Any]) -> bool:
    return any(k in s for k in ("allOf", "anyOf", "oneOf", "not", "if", "dependentSchemas", "$ref"))


def _merge_into(out: dict[str, Any], part: dict[str, Any]) -> bool:
    """Merge an allOf *part* into *out* when the result means the same; False (nothing changed) otherwise."""
    if any(k in part for k in ("additionalProperties", "patternProperties", "unevaluatedProperties",
                               "unevaluatedItems", "items", "prefixItems", "additionalItems")):
        return False
    if "properties" in part and any(k in out for k in ("additionalProperties", "patternProperties")):
        return False
    for k, v in part.items():
        if k in out and k not in ("required", "properties") and out[k] != v:
            return False
        if k == "properties" and "properties" in out and any(n in out["properties"] and out["properties"][n] != s
                                                            for n, s in v.items()):
            return False
    for k, v in part.items():
        if k == "required" and "required" in out:
            out["required"] = list(dict.fromkeys([*out["required"], *v]))
        elif k == "properties" and "properties" in out:
            out["properties"] = {**out["properties"], **v}
        else:
            out[k] = v
    return True


def canonical(schema: Any) -> Any:
    """The schema in the one form the proof reads (2020-12 keywords, no annotations, no ``$ref``).

    Raises ``_Undecidable`` for ``$ref`` left in (recursive schemas) and dynamic references.
    """
    return _canon(_inline_refs(schema), _dialect(schema))


def _canon(s: Any, d: str) -> Any:
    if isinstance(s, bool):
        return s
    if not isinstance(s, dict):
        return True
    out: dict[str, Any] = {}
    if "$ref" in s or "$dynamicRef" in s or "$recursiveRef" in s:
        raise _Undecidable("$ref", "a recursive or unresolved $ref is not decided")
    for k, v in s.items():
        if _inert(k) or (d == "07" and k in _NOT_IN_07):
            continue
        _canon_keyword(out, s, k, v, d)
    return _canon_tidy(out)


def _canon_keyword(out: dict[str, Any], s: dict[str, Any], k: str, v: Any, d: str) -> None:  # noqa: PLR0912 - one branch per keyword
    """Keyword *k* (value *v*) of schema *s* (draft *d*) into its canonical form *out*."""
    if k in ("properties", "patternProperties", "dependentSchemas"):
        if isinstance(v, dict):
            out[k] = {n: _canon(x, d) for n, x in v.items()}
    elif k in ("allOf", "anyOf", "oneOf"):
        out[k] = [_canon(x, d) for x in v]
    elif k == "prefixItems":
        if d == "2020":
            out[k] = [_canon(x, d) for x in v]
    elif k == "items":
        if isinstance(v, list):
            out["prefixItems"] = [_canon(x, d) for x in v]
            if "additionalItems" in s:
                out["items"] = _canon(s["additionalItems"], d)
        else:
            out["items"] = _canon(v, d)
    elif k == "additionalItems":
        return
    elif k == "dependencies" and isinstance(v, dict):
        for n, x in v.items():
            if isinstance(x, list):
                out.setdefault("dependentRequired", {})[n] = x
            else:
                out.setdefault("dependentSchemas", {})[n] = _canon(x, d)
    elif k in ("additionalProperties", "unevaluatedProperties", "unevaluatedItems", "contains",
               "propertyNames", "not", "if", "then", "else"):
        out[k] = _canon(v, d)
    elif k in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(v, bool):
        base = "minimum" if k == "exclusiveMinimum" else "maximum"
        if v and base in s:
            out[k] = s[base]
    elif k in ("minimum", "maximum") and isinstance(s.get("exclusive" + k[:1].upper() + k[1:]), bool) \
            and s["exclusive" + k[:1].upper() + k[1:]]:
        return
    elif k == "dependentRequired" and "dependentRequired" in out:
        out[k] = {**out[k], **v}
    elif k == "dependentSchemas" and "dependentSchemas" in out:
        out[k] = {**out[k], **{n: _canon(x, d) for n, x in v.items()}}
    else:
        out[k] = v


def _canon_tidy(out: dict[str, Any]) -> dict[str, Any]:
    """The canonical form's last steps: a conditional without branches dropped, a one-type list unwrapped, allOf
    parts that mean the same merged into the parent, unevaluated* without applicators read as additional*, and
    keywords that allow everything dropped."""
    if "if" in out and "then" not in out and "else" not in out:
        del out["if"]
    if "if" not in out:
        out.pop("then", None)
        out.pop("else", None)
    if isinstance(out.get("type"), list) and len(out["type"]) == 1:
        out["type"] = out["type"][0]
    # allOf parts that mean the same merged into the parent (so that unevaluated* can become additional*).
    if "allOf" in out:
        kept = []
        for part in out["allOf"]:
            if part is True or part == {}:
                continue
            if isinstance(part, dict) and not _has_applicators(part) and _merge_into(out, part):
                continue
            kept.append(part)
        if kept:
            out["allOf"] = kept
        else:
            del out["allOf"]
    if "unevaluatedProperties" in out and not _has_applicators(out):
        up = out.pop("unevaluatedProperties")
        out.setdefault("additionalProperties", up)
    if "unevaluatedItems" in out and not _has_applicators(out) and "contains" not in out:
        ui = out.pop("unevaluatedItems")
        out.setdefault("items", ui)
    if out.get("additionalProperties") is True:
        del out["additionalProperties"]
    if out.get("items") is True:
        del out["items"]
    return out


class _Undecidable(Exception):
    def __init__(self, keyword: str, reason: str) -> None:
        super().__init__(reason)
        self.keyword = keyword
        self.reason = reason


def _inline_refs(schema: Any) -> Any:  # noqa: C901 - not split yet (issue 25)
    """Inline ``$ref`` that point into the same document (JSON pointers, ``$anchor``s, ``$id``s of
    subschemas). References across files are inlined by the loader before."""
    if not isinstance(schema, dict) or "$ref" not in json.dumps(schema):
        return schema
    draft07 = _dialect(schema) == "07"
    anchors: dict[str, Any] = {}

    def collect(node: Any) -> None:
        if isinstance(node, dict):
            for key in ("$anchor", "$id"):
                if isinstance(node.get(key), str):
                    anchors[node[key]] = node
                    anchors["#" + node[key]] = node
            for k, v in node.items():
                if k not in ("enum", "const", "examples", "default"):
                    collect(v)
        elif isinstance(node, list):
            for v in node:
                collect(v)

    collect(schema)

    def target(ref: str) -> Any:
        if ref in anchors:
            return anchors[ref]
        if ref.startswith("#/") or ref == "#":
            node: Any = schema
            for raw in ref[2:].split("/") if ref != "#" else []:
                tok = raw.replace("~1", "/").replace("~0", "~")
                if isinstance(node, dict) and tok in node:
                    node = node[tok]
                elif isinstance(node, list) and tok.isdigit():
                    node = node[int(tok)]
                else:
                    raise _Undecidable("$ref", f"$ref '{ref}' points nowhere")
            return node
        if ref.startswith("#") and ref[1:] in anchors:
            return anchors[ref[1:]]
        raise _Undecidable("$ref", f"$ref '{ref}' is not resolved")

    def walk(node: Any, stack: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [walk(v, stack) for v in node]
        if not isinstance(node, dict):
            return node
        if isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if ref in stack:
                raise _Undecidable("$ref", f"$ref '{ref}' is recursive")
            resolved = walk(target(ref), (*stack, ref))
            if draft07:  # draft-07 ignores the keywords beside a $ref
                return resolved
            rest = {k: walk(v, stack) for k, v in node.items() if k != "$ref"}
            if any(not _inert(k) for k in rest):
                return {"allOf": [resolved, rest]}
            return resolved
        return {k: (v if k in ("enum", "const", "examples", "default") else walk(v, stack)) for k, v in node.items()}

    return walk(schema, ())
