"""Producer/consumer schema compatibility: is every message the producer's schema allows accepted by the
consumer's schema (P ⊆ C)? The one engine behind ``contracts check``, ``contracts diff`` and
``contracts can-i-deploy``.

A pair gets one of three answers:

* ``ok``: proven. A structural proof over JSON Schema 2020-12 and draft-07 (both read into one canonical
  form: draft-07 array-form ``items``/``additionalItems`` become ``prefixItems``/``items``, ``dependencies``
  becomes ``dependentRequired``/``dependentSchemas``, ``unevaluated*`` without in-place applicators becomes
  ``additional*``) shows that every value the producer allows satisfies every keyword of the consumer.
  Producer unions and conditionals are split; keywords of the producer the proof does not use are dropped,
  which only makes the producer larger, so the proof stays sound.
* ``incompatible``: a counterexample was found, a message the producer's schema accepts and the
  consumer's rejects, and *both* jsonschema-rs and python-jsonschema agree on that before it is reported.
  Candidates come from a targeted generator that reads both schemas (bounds, lengths, patterns, formats,
  required and optional properties, tuples, ``contains``, ...), then from a property-based search
  (schemathesis/hypothesis, deterministic) over the producer's schema.
* ``unknown`` (shown as *undecided*): neither. The verdict names the consumer keyword and its location
  (a JSON pointer into the consumer's schema) at which the proof stopped.

A keyword is never assumed to be satisfied: a consumer keyword the proof does not model stops it.
"""

from __future__ import annotations

import json
import math
import re
import sre_constants
import sre_parse
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Any, Literal, cast

import jsonschema  # type: ignore[import-untyped]
from sagaproof.contracts.generate import NOT_FOUND, compile_validator, search

__all__ = ["Verdict", "canonical", "is_compatible", "validated_by_both"]

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
        if _inert(k):
            continue
        if d == "07" and k in _NOT_IN_07:
            continue
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
            continue
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
            continue
        elif k == "dependentRequired" and "dependentRequired" in out:
            out[k] = {**out[k], **v}
        elif k == "dependentSchemas" and "dependentSchemas" in out:
            out[k] = {**out[k], **{n: _canon(x, d) for n, x in v.items()}}
        else:
            out[k] = v
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


def _inline_refs(schema: Any) -> Any:
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


# ----------------------------------------------------------------------------- helpers


def _esc(tok: Any) -> str:
    return str(tok).replace("~", "~0").replace("/", "~1")


def _types(s: dict[str, Any]) -> set[str] | None:
    t = s.get("type")
    if t is None:
        return None
    return {t} if isinstance(t, str) else set(t)


def _bound(s: dict[str, Any], lower: bool) -> tuple[Fraction, bool] | None:
    inc_key, exc_key = ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    best: tuple[Fraction, bool] | None = None
    for key, exclusive in ((inc_key, False), (exc_key, True)):
        v = s.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        cand = (Fraction(str(v)), exclusive)
        best = _tighter(best, cand, lower)
    return best


def _tighter(a: tuple[Fraction, bool] | None, b: tuple[Fraction, bool] | None,
             lower: bool) -> tuple[Fraction, bool] | None:
    if a is None:
        return b
    if b is None:
        return a
    if a[0] == b[0]:
        return (a[0], a[1] or b[1])
    return (a if a[0] > b[0] else b) if lower else (a if a[0] < b[0] else b)


def _bound_ok(pb: tuple[Fraction, bool] | None, cb: tuple[Fraction, bool] | None, lower: bool,
              integer: bool) -> bool:
    if cb is None:
        return True
    if pb is None:
        return False
    (pv, pex), (cv, cex) = pb, cb
    if integer:  # the producer's integers: the tightest integer bound
        if lower:
            pv, pex = (Fraction(math.floor(pv) + 1) if pex else Fraction(math.ceil(pv))), False
        else:
            pv, pex = (Fraction(math.ceil(pv) - 1) if pex else Fraction(math.floor(pv))), False
    if pv == cv:
        return pex or not cex
    return pv > cv if lower else pv < cv


def _num(v: Any) -> str:
    """A number as JSON Schema writes it: 1, not 1.0."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else _short(v)


def _short(v: Any, limit: int = 60) -> str:
    s = json.dumps(v, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@lru_cache(maxsize=2048)
def _regex(pattern: str) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern)
    except (re.error, TypeError):
        return None


def _matches(pattern: str, name: str) -> bool | None:
    rx = _regex(pattern)
    return None if rx is None else rx.search(name) is not None


_BY_ID: dict[int, tuple[Any, Any]] = {}


def _validator_of(schema: Any) -> Any:
    """compile_validator, memoised by object identity (the schema is kept alive with its validator)."""
    hit = _BY_ID.get(id(schema))
    if hit is not None and hit[0] is schema:
        return hit[1]
    if len(_BY_ID) > 20000:
        _BY_ID.clear()
    v = compile_validator(schema)
    _BY_ID[id(schema)] = (schema, v)
    return v


def _valid(schema: Any, value: Any) -> bool:
    try:
        return bool(_validator_of(schema).is_valid(value))
    except Exception:
        return False


_ATOM = re.compile(r"(\[(?:\\.|[^\]\\])+\]|\\[dDwWsS]|\\[^\w]|[^\\^$.|?*+()\[\]{}]|\.)"
                   r"(\{(\d+)(,(\d*))?\}|[?*+])?")


def _pattern_length(pattern: str) -> tuple[int, int | None] | None:
    """(min, max) length of the strings an anchored pattern of single-character atoms matches, e.g.
    ``^[A-Za-z0-9_-]{1,64}$`` -> (1, 64), ``^\\d{4}-\\d{2}$`` -> (7, 7); None for any other pattern."""
    if not (pattern.startswith("^") and pattern.endswith("$")) or pattern.endswith("\\$"):
        return None
    body, lo = pattern[1:-1], 0
    hi: int | None = 0
    pos = 0
    while pos < len(body):
        m = _ATOM.match(body, pos)
        if m is None:
            return None
        quant = m.group(2)
        b: int | None
        if quant is None:
            a, b = 1, 1
        elif quant == "?":
            a, b = 0, 1
        elif quant == "*":
            a, b = 0, None
        elif quant == "+":
            a, b = 1, None
        else:
            a = int(m.group(3))
            b = a if m.group(4) is None else (int(m.group(5)) if m.group(5) else None)
        lo += a
        hi = None if hi is None or b is None else hi + b
        pos = m.end()
    return lo, hi


# ----------------------------------------------------------------------------- the proof


@dataclass
class _Stop:
    keyword: str
    path: str
    reason: str


def _flat(ps: list[Any]) -> list[dict[str, Any]] | None:
    """Producer conjuncts with allOf flattened; None when one is ``false`` (no value at all)."""
    out: list[dict[str, Any]] = []
    stack = list(ps)
    while stack:
        p = stack.pop(0)
        if p is True or p == {}:
            continue
        if p is False or not isinstance(p, dict):
            if p is False:
                return None
            continue
        if "allOf" in p:
            rest = {k: v for k, v in p.items() if k != "allOf"}
            stack = [*p["allOf"], *([rest] if rest else []), *stack]
            continue
        if p not in out:
            out.append(p)
    return out


def _split(ps: list[dict[str, Any]]) -> list[list[Any]] | None:
    """Producer unions (anyOf, oneOf, if/then/else, several types) as a list of alternatives."""
    for i, p in enumerate(ps):
        before, after = ps[:i], ps[i + 1:]
        for key in ("anyOf", "oneOf"):
            if key in p:
                rest = {k: v for k, v in p.items() if k != key}
                return [[*before, rest, b, *after] for b in p[key]]
        if "if" in p:
            rest = {k: v for k, v in p.items() if k not in ("if", "then", "else")}
            return [[*before, rest, p["if"], p.get("then", True), *after],
                    [*before, rest, {"not": p["if"]}, p.get("else", True), *after]]
    for i, p in enumerate(ps):
        t = p.get("type")
        if isinstance(t, list) and len(t) > 1:
            return [[*ps[:i], {**p, "type": x}, *ps[i + 1:]] for x in t]
    return None


def _ptypes(ps: list[dict[str, Any]]) -> set[str]:
    """The types a producer value may have ("number" stands for non-integer numbers)."""
    ts = set(_TYPES)
    for p in ps:
        t = _types(p)
        if t is not None:
            tt = set(t) | ({"integer"} if "number" in t else set())
            ts &= tt
        n = p.get("not")
        if isinstance(n, dict) and set(n) == {"type"}:
            nt = _types(n) or set()
            ts -= nt | ({"integer"} if "number" in nt else set())
        m = p.get("multipleOf")
        if isinstance(m, (int, float)) and not isinstance(m, bool) and Fraction(str(m)).denominator == 1:
            ts.discard("number")
    return ts


def _ctypes(c: dict[str, Any]) -> set[str] | None:
    t = _types(c)
    if t is None:
        return None
    return set(t) | ({"integer"} if "number" in t else set())


def _finite(ps: list[dict[str, Any]]) -> list[Any] | None:
    cands: list[Any] | None = None
    for p in ps:
        if "const" in p:
            cands = [p["const"]]
            break
        if isinstance(p.get("enum"), list):
            cands = list(p["enum"])
            break
    if cands is None:
        ts = _ptypes(ps)
        if ts <= {"null", "boolean"}:
            cands = ([None] if "null" in ts else []) + ([False, True] if "boolean" in ts else [])
    if cands is None:
        return None
    return [v for v in cands if all(_valid(p, v) for p in ps)]


def _pprop(p: dict[str, Any], k: str) -> list[tuple[Any, str]]:
    """The schemas *p* applies to the value of property *k*, each with its location in *p*."""
    out: list[tuple[Any, str]] = []
    matched = False
    props = p.get("properties") or {}
    if k in props:
        out.append((props[k], f"/properties/{_esc(k)}"))
        matched = True
    for pat, s in (p.get("patternProperties") or {}).items():
        if _matches(pat, k):
            out.append((s, f"/patternProperties/{_esc(pat)}"))
            matched = True
    if not matched and "additionalProperties" in p:
        out.append((p["additionalProperties"], "/additionalProperties"))
    return out


def _required(ps: list[dict[str, Any]]) -> set[str]:
    req: set[str] = set()
    for p in ps:
        req |= set(p.get("required") or [])
    changed = True
    while changed:
        changed = False
        for p in ps:
            for k in list(req):
                extra = set((p.get("dependentRequired") or {}).get(k, []))
                ds = (p.get("dependentSchemas") or {}).get(k)
                if isinstance(ds, dict):
                    extra |= set(ds.get("required") or [])
                if not extra <= req:
                    req |= extra
                    changed = True
    return req


def _closed_names(ps: list[dict[str, Any]]) -> set[str] | None:
    """The only property names a producer object may have, when that set is finite."""
    names: set[str] | None = None
    for p in ps:
        if p.get("additionalProperties") is False and not p.get("patternProperties"):
            pn = set(p.get("properties") or {})
            names = pn if names is None else names & pn
        pnames = p.get("propertyNames")
        if isinstance(pnames, dict) and ("enum" in pnames or "const" in pnames):
            vals = {v for v in ([pnames["const"]] if "const" in pnames else pnames["enum"]) if isinstance(v, str)}
            names = vals if names is None else names & vals
        if isinstance(p.get("maxProperties"), int) and p["maxProperties"] == 0:
            names = set()
    return names


class _Prover:
    def __init__(self, budget: int = 4000) -> None:
        self.budget = budget

    def sub(self, ps: list[Any], c: Any, loc: str) -> _Stop | None:
        self.budget -= 1
        if self.budget < 0:
            return _Stop("", loc, "the proof grew too large")
        fps = _flat(ps)
        if fps is None or c is True or c == {}:
            return None
        if any(p == c for p in fps):
            return None
        if c is False:
            return _Stop("false", loc, "the consumer schema accepts nothing here")
        if not isinstance(c, dict):
            return None
        vals = _finite(fps)
        if vals is not None:
            for v in vals:
                if not _valid(c, v):
                    kw = _first_keyword(c, v)
                    return _Stop(kw, f"{loc}/{kw}" if kw else loc,
                                 f"the producer may send {_short(v)}, which the consumer rejects")
            return None
        alts = _split(fps)
        if alts is not None:
            for alt in alts:
                r = self.sub(alt, c, loc)
                if r is not None:
                    return r
            return None
        return self._consumer(fps, c, loc)

    def _consumer(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str) -> _Stop | None:
        if "allOf" in c:
            for i, part in enumerate(c["allOf"]):
                r = self.sub(ps, part, f"{loc}/allOf/{i}")
                if r is not None:
                    return r
            c = {k: v for k, v in c.items() if k != "allOf"}
            if not c:
                return None
        for key in ("anyOf", "oneOf"):
            if key in c:
                branches = c[key]
                hit = None
                for i, b in enumerate(branches):
                    saved = self.budget
                    if self.sub(ps, b, f"{loc}/{key}/{i}") is None:
                        hit = i
                        break
                    self.budget = min(self.budget, saved - 1)
                if hit is None:
                    return _Stop(key, f"{loc}/{key}", f"no single branch of the consumer's {key} is shown to accept "
                                                      "every producer message")
                if key == "oneOf":
                    for j, o in enumerate(branches):
                        if j != hit and not self.disjoint(ps, o):
                            return _Stop("oneOf", f"{loc}/oneOf/{j}", "a producer message may match more than one "
                                                                      "branch of the consumer's oneOf")
                c = {k: v for k, v in c.items() if k != key}
        if "not" in c and not self.disjoint(ps, c["not"]):
            return _Stop("not", f"{loc}/not", "the producer's messages are not shown to avoid the consumer's 'not'")
        if "if" in c:
            th, el = c.get("then", True), c.get("else", True)
            if self.sub(ps, c["if"], f"{loc}/if") is None:
                r = self.sub(ps, th, f"{loc}/then")
            elif self.disjoint(ps, c["if"]):
                r = self.sub(ps, el, f"{loc}/else")
            else:
                r = self.sub([*ps, c["if"]], th, f"{loc}/then") or self.sub([*ps, {"not": c["if"]}], el, f"{loc}/else")
            if r is not None:
                return r
        for k in ("$ref", "$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems"):
            if k in c:
                return _Stop(k, f"{loc}/{k}", f"the consumer's '{k}' here is not decided structurally")
        if "enum" in c or "const" in c:
            k = "const" if "const" in c else "enum"
            return _Stop(k, f"{loc}/{k}", f"the consumer accepts only {_short(c.get(k))}; the producer does not "
                                          "restrict the value to those")
        pt = _ptypes(ps)
        ct = _ctypes(c)
        if ct is not None:
            for t in sorted(pt):
                if t not in ct:
                    why = "a non-integer number" if t == "number" else t
                    return _Stop("type", f"{loc}/type", f"the producer may send {why} where the consumer requires "
                                                        f"{' or '.join(sorted(_types(c) or []))}")
        if pt & {"integer", "number"} and _NUMKW & set(c):
            r = self._numbers(ps, c, loc, integer="number" not in pt)
            if r is not None:
                return r
        if "string" in pt and _STRKW & set(c):
            r = self._strings(ps, c, loc)
            if r is not None:
                return r
        if "array" in pt and _ARRKW & set(c):
            r = self._arrays(ps, c, loc)
            if r is not None:
                return r
        if "object" in pt and _OBJKW & set(c):
            r = self._objects(ps, c, loc)
            if r is not None:
                return r
        return None

    # -- numbers, strings

    def _numbers(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str, integer: bool) -> _Stop | None:
        for lower in (True, False):
            cb = _bound(c, lower)
            pb = None
            for p in ps:
                pb = _tighter(pb, _bound(p, lower), lower)
            if not _bound_ok(pb, cb, lower, integer):
                key = ("exclusiveMinimum" if cb and cb[1] else "minimum") if lower else \
                      ("exclusiveMaximum" if cb and cb[1] else "maximum")
                what = "below" if lower else "above"
                return _Stop(key, f"{loc}/{key}", f"the producer may send a number {what} the consumer's {key} "
                                                  f"{_num(c[key])}")
        if "multipleOf" in c:
            m = Fraction(str(c["multipleOf"]))
            ks = [Fraction(str(p["multipleOf"])) for p in ps if isinstance(p.get("multipleOf"), (int, float))]
            if integer:
                ks.append(Fraction(1))
            if not any((k / m).denominator == 1 for k in ks):
                return _Stop("multipleOf", f"{loc}/multipleOf", "the producer's numbers are not all multiples of "
                                                                f"{_num(c['multipleOf'])}")
        return None

    def _strings(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str) -> _Stop | None:
        lo, hi = 0, math.inf
        for p in ps:
            lo = max(lo, p.get("minLength", 0))
            hi = min(hi, p.get("maxLength", math.inf))
            bounds = _pattern_length(p["pattern"]) if isinstance(p.get("pattern"), str) else None
            if bounds is None and p.get("format") in _FORMAT_LENGTH:
                bounds = _FORMAT_LENGTH[p["format"]]
            if bounds is not None:
                lo = max(lo, bounds[0])
                if bounds[1] is not None:
                    hi = min(hi, bounds[1])
            n = p.get("not")
            if isinstance(n, dict) and set(n) == {"maxLength"}:
                lo = max(lo, n["maxLength"] + 1)
            if isinstance(n, dict) and set(n) == {"minLength"}:
                hi = min(hi, n["minLength"] - 1)
        if lo < c.get("minLength", 0):
            return _Stop("minLength", f"{loc}/minLength", "the producer may send a string shorter than the "
                                                          f"consumer's minLength {_num(c['minLength'])}")
        if "maxLength" in c and hi > c["maxLength"]:
            return _Stop("maxLength", f"{loc}/maxLength", "the producer may send a string longer than the "
                                                          f"consumer's maxLength {_num(c['maxLength'])}")
        if "pattern" in c and not any(p.get("pattern") == c["pattern"] for p in ps) \
                and c["pattern"] not in ("", "^.*$", ".*", "^", "$"):
            return _Stop("pattern", f"{loc}/pattern", f"the consumer requires pattern {_short(c['pattern'], 200)}, "
                                                      "which the producer's strings are not shown to match")
        if c.get("format") in _FORMATS and not any(p.get("format") == c["format"] for p in ps):
            return _Stop("format", f"{loc}/format", f"the consumer requires format '{c['format']}'; the producer "
                                                    "does not declare it")
        return None

    # -- arrays

    def _position(self, p: dict[str, Any], i: int | None) -> Any:
        pre = p.get("prefixItems") or []
        if i is not None and i < len(pre):
            return pre[i]
        return p.get("items", True)

    def _arrays(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str) -> _Stop | None:
        pmin = 0
        pmax: float = math.inf
        for p in ps:
            pmin = max(pmin, p.get("minItems", 0))
            pmax = min(pmax, p.get("maxItems", math.inf))
            if "contains" in p:
                pmin = max(pmin, p.get("minContains", 1))
            if p.get("items") is False:
                pmax = min(pmax, len(p.get("prefixItems") or []))
        if pmin < c.get("minItems", 0):
            return _Stop("minItems", f"{loc}/minItems", "the producer may send fewer items than the consumer's "
                                                        f"minItems {_num(c['minItems'])}")
        if "maxItems" in c and pmax > c["maxItems"]:
            return _Stop("maxItems", f"{loc}/maxItems", "the producer may send more items than the consumer's "
                                                        f"maxItems {_num(c['maxItems'])}")
        if c.get("uniqueItems") is True and pmax > 1 and not any(p.get("uniqueItems") is True for p in ps):
            return _Stop("uniqueItems", f"{loc}/uniqueItems", "the consumer requires unique items; the producer may "
                                                              "repeat one")
        n = max([len(c.get("prefixItems") or []), *[len(p.get("prefixItems") or []) for p in ps]])
        for i in range(n + 1):
            if i >= pmax:
                break
            idx = i if i < n else None
            cpre = c.get("prefixItems") or []
            if idx is not None and idx < len(cpre):
                cs_, where = cpre[idx], f"{loc}/prefixItems/{idx}"
            elif "items" in c:
                cs_, where = c["items"], f"{loc}/items"
            else:
                continue
            r = self.sub([self._position(p, idx) for p in ps], cs_, where)
            if r is not None:
                return r
        if "contains" in c:
            x = c["contains"]
            m = c.get("minContains", 1)
            if m > 0:
                ok = any("contains" in p and p.get("minContains", 1) >= m and self.sub([p["contains"]], x, loc) is None
                         for p in ps)
                if not ok and pmin >= m:
                    ok = all(self.sub([self._position(p, i) for p in ps], x, f"{loc}/contains") is None for i in range(m))
                if not ok:
                    kw = "minContains" if "minContains" in c else "contains"
                    return _Stop(kw, f"{loc}/{kw}", "the producer's arrays are not shown to hold enough items the "
                                                    "consumer's 'contains' accepts")
            if "maxContains" in c:
                mx = c["maxContains"]
                ok = pmax <= mx or any("contains" in p and p.get("maxContains", math.inf) <= mx
                                       and self.sub([x], p["contains"], loc) is None for p in ps)
                if not ok:
                    positions = [None] + list(range(n))
                    ok = all(self.disjoint([self._position(p, i) for p in ps], x) for i in positions)
                if not ok:
                    return _Stop("maxContains", f"{loc}/maxContains", "the producer's arrays may hold more items the "
                                                                      f"consumer's 'contains' matches than {mx}")
        return None

    # -- objects

    def _objects(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str) -> _Stop | None:
        req = _required(ps)
        closed = _closed_names(ps)
        names: set[str] = set(req) | set(c.get("properties") or {}) | set(c.get("dependentRequired") or {}) \
            | set(c.get("dependentSchemas") or {}) | set(c.get("required") or [])
        for p in ps:
            names |= set(p.get("properties") or {})
        if closed is not None:
            names |= closed

        def p_schemas(k: str) -> list[Any]:
            if closed is not None and k not in closed:
                return [False]
            return [s for p in ps for s, _ in _pprop(p, k)]

        def forbidden(k: str) -> bool:
            return _flat(p_schemas(k)) is None

        for k in sorted(names):
            cks = _pprop(c, k)
            if not cks or forbidden(k):
                continue
            pk = p_schemas(k)
            for cs_, where in cks:
                r = self.sub(pk, cs_, loc + where)
                if r is not None:
                    return r
        cpats = c.get("patternProperties") or {}
        if closed is None:
            for pat, cs_ in cpats.items():
                pk = []
                for p in ps:
                    ppats = p.get("patternProperties") or {}
                    if pat in ppats:
                        pk.append(ppats[pat])
                    elif not ppats and "additionalProperties" in p:
                        pk.append(p["additionalProperties"])
                r = self.sub(pk, cs_, f"{loc}/patternProperties/{_esc(pat)}")
                if r is not None:
                    return r
            if "additionalProperties" in c:
                cap = c["additionalProperties"]
                base = [p["additionalProperties"] for p in ps if "additionalProperties" in p
                        and not p.get("patternProperties")]
                alts: list[list[Any]] = [base]
                for p in ps:
                    ppats = p.get("patternProperties") or {}
                    extra = [s for pat, s in ppats.items() if pat not in cpats]
                    if ppats:
                        alts = [[*base, p.get("additionalProperties", True)], *[[*base, s] for s in extra]]
                        break
                for alt in alts:
                    r = self.sub(alt, cap, f"{loc}/additionalProperties")
                    if r is not None:
                        if cap is False:
                            r = _Stop("additionalProperties", f"{loc}/additionalProperties", "the producer may send "
                                      "properties the consumer does not declare (consumer has additionalProperties: false)")
                        return r
        for k in c.get("required") or []:
            if k not in req:
                return _Stop("required", f"{loc}/required", f"the consumer requires '{k}', which the producer does "
                                                            "not always send")
        if "minProperties" in c:
            pmin = max([len(req), *[p.get("minProperties", 0) for p in ps]])
            if pmin < c["minProperties"]:
                return _Stop("minProperties", f"{loc}/minProperties", "the producer may send fewer properties than "
                                                                      f"the consumer's minProperties {c['minProperties']}")
        if "maxProperties" in c:
            pmax = min([math.inf, *[p.get("maxProperties", math.inf) for p in ps]])
            if closed is not None:
                pmax = min(pmax, len([k for k in closed if not forbidden(k)]))
            if pmax > c["maxProperties"]:
                return _Stop("maxProperties", f"{loc}/maxProperties", "the producer may send more properties than "
                                                                      f"the consumer's maxProperties {c['maxProperties']}")
        if "propertyNames" in c:
            pn = [{"type": "string"}, *[p["propertyNames"] for p in ps if "propertyNames" in p]]
            if self.sub(pn, c["propertyNames"], f"{loc}/propertyNames") is not None:
                allowed = [k for k in (closed or set()) if not forbidden(k)]
                if closed is None or not all(_valid(c["propertyNames"], k) for k in allowed):
                    return _Stop("propertyNames", f"{loc}/propertyNames", "the producer's property names are not "
                                                                          "shown to satisfy the consumer's propertyNames")
        for k, deps in (c.get("dependentRequired") or {}).items():
            if forbidden(k):
                continue
            have = req | {d for p in ps for d in (p.get("dependentRequired") or {}).get(k, [])}
            for p in ps:
                ds = (p.get("dependentSchemas") or {}).get(k)
                if isinstance(ds, dict):
                    have |= set(ds.get("required") or [])
            missing = [d for d in deps if d not in have]
            if missing:
                return _Stop("dependentRequired", f"{loc}/dependentRequired/{_esc(k)}", f"the consumer requires "
                             f"'{missing[0]}' whenever '{k}' is present; the producer does not")
        for k, s in (c.get("dependentSchemas") or {}).items():
            if forbidden(k):
                continue
            extra = [{"required": [k]}, *[p["dependentSchemas"][k] for p in ps if k in (p.get("dependentSchemas") or {})]]
            if self.sub([*ps, *extra], s, f"{loc}/dependentSchemas/{_esc(k)}") is not None:
                return _Stop("dependentSchemas", f"{loc}/dependentSchemas/{_esc(k)}", "the producer's messages with "
                             f"'{k}' are not shown to satisfy the consumer's dependentSchemas")
        return None

    # -- disjointness (for not, oneOf and if)

    def disjoint(self, ps: list[Any], x: Any, depth: int = 0) -> bool:
        """True when provably no producer value is valid under *x*."""
        fps = _flat(ps)
        if fps is None or x is False:
            return True
        if x is True or not isinstance(x, dict) or x == {} or depth > 6:
            return False
        self.budget -= 1
        if self.budget < 0:
            return False
        if "allOf" in x:
            rest = {k: v for k, v in x.items() if k != "allOf"}
            if any(self.disjoint(fps, part, depth + 1) for part in x["allOf"]):
                return True
            return bool(rest) and self.disjoint(fps, rest, depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in x:
                rest = {k: v for k, v in x.items() if k != key}
                if rest and self.disjoint(fps, rest, depth + 1):
                    return True
                return all(self.disjoint(fps, b, depth + 1) for b in x[key])
        vals = _finite(fps)
        if vals is not None:
            return not any(_valid(x, v) for v in vals)
        if "const" in x or "enum" in x:
            xv = [x["const"]] if "const" in x else x["enum"]
            return not any(all(_valid(p, v) for p in fps) for v in xv)
        for p in fps:
            if "not" in p and self.sub([x], p["not"], "") is None:
                return True
        if "not" in x and self.sub(fps, x["not"], "") is None:
            return True
        alts = _split(fps)
        if alts is not None:
            return all(self.disjoint(a, x, depth + 1) for a in alts)
        pt = _ptypes(fps)
        xt = _ctypes(x)
        common = pt if xt is None else pt & xt
        if not common:
            return True
        if common <= {"integer", "number"}:
            lo = hi = None
            for s in [*fps, x]:
                lo = _tighter(lo, _bound(s, True), True)
                hi = _tighter(hi, _bound(s, False), False)
            if lo is not None and hi is not None and (lo[0] > hi[0] or (lo[0] == hi[0] and (lo[1] or hi[1]))):
                return True
        if common == {"string"}:
            lo_ = max(s.get("minLength", 0) for s in [*fps, x])
            hi_ = min(s.get("maxLength", math.inf) for s in [*fps, x])
            if lo_ > hi_:
                return True
        if common == {"object"}:
            req = _required(fps)
            closed = _closed_names(fps)
            for k in x.get("required") or []:
                pk = [s for p in fps for s, _ in _pprop(p, k)]
                if (closed is not None and k not in closed) or _flat(pk) is None:
                    return True
                if k in req:
                    xk = [s for s, _ in _pprop(x, k)]
                    if xk and any(self.disjoint(pk, s, depth + 1) for s in xk):
                        return True
        return False


def _first_keyword(schema: Any, value: Any) -> str:
    for err in compile_validator(schema).iter_errors(value):
        path = list(err.schema_path)
        return str(path[-1]) if path else ""
    return ""


# ----------------------------------------------------------------------------- counterexample candidates

_FORMAT_SAMPLES = {"date-time": "2024-01-02T03:04:05Z", "date": "2024-01-02", "time": "03:04:05Z",
                   "duration": "P1D", "email": "a@example.com", "idn-email": "a@example.com",
                   "hostname": "example.com", "idn-hostname": "example.com", "ipv4": "127.0.0.1", "ipv6": "::1",
                   "uri": "https://example.com/a", "uri-reference": "/a", "iri": "https://example.com/a",
                   "iri-reference": "/a", "uuid": "123e4567-e89b-12d3-a456-426614174000", "regex": "^a$",
                   "json-pointer": "/a", "relative-json-pointer": "0/a", "uri-template": "/a/{b}"}


def _regex_samples(pattern: str, limit: int = 4) -> list[str]:
    """A few strings that match *pattern* (simple patterns only), shortest first."""
    try:
        parsed = sre_parse.parse(pattern)
    except (re.error, sre_constants.error, TypeError, RecursionError):
        return []
    out: list[str] = []
    for extra in (0, 1, 2):
        for branch in (0, 1):
            try:
                s = _gen_re(list(cast(Any, parsed)), extra, branch)
            except (ValueError, RecursionError, TypeError):
                continue
            if s not in out and _matches(pattern, s):
                out.append(s)
    return out[:limit]


def _gen_re(items: list[Any], extra: int, branch: int) -> str:
    s = ""
    for op, av in items:
        name = str(op)
        if name == "LITERAL":
            s += chr(av)
        elif name == "NOT_LITERAL":
            s += "a" if av != ord("a") else "b"
        elif name == "ANY":
            s += "a"
        elif name == "IN":
            s += _gen_in(av)
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            lo, hi, sub = av
            n = lo + extra if hi is sre_constants.MAXREPEAT or lo + extra <= hi else hi
            s += _gen_re(list(sub), 0, branch) * n
        elif name == "SUBPATTERN":
            s += _gen_re(list(av[-1]), extra, branch)
        elif name == "BRANCH":
            alts = av[1]
            s += _gen_re(list(alts[min(branch, len(alts) - 1)]), extra, 0)
        elif name in ("AT", "ASSERT", "ASSERT_NOT"):
            continue
        elif name == "CATEGORY":
            s += _cat(av)
        else:
            raise ValueError(name)
    return s


def _cat(av: Any) -> str:
    n = str(av)
    if "NOT_DIGIT" in n:
        return "a"
    if "DIGIT" in n:
        return "0"
    if "NOT_WORD" in n:
        return "-"
    if "WORD" in n:
        return "a"
    if "NOT_SPACE" in n:
        return "a"
    if "SPACE" in n:
        return " "
    return "a"


def _gen_in(av: list[Any]) -> str:
    negate = any(str(op) == "NEGATE" for op, _ in av)
    if negate:
        excluded = {v for op, v in av if str(op) == "LITERAL"}
        for ch in "aZ0_-":
            if ord(ch) not in excluded:
                return ch
        return "~"
    for op, v in av:
        n = str(op)
        if n == "LITERAL":
            return chr(v)
        if n == "RANGE":
            return chr(v[0])
        if n == "CATEGORY":
            return _cat(v)
    return "a"


def _hints(schemas: list[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    stack = list(schemas)
    while stack and len(out) < 40:
        s = stack.pop(0)
        if not isinstance(s, dict):
            continue
        out.append(s)
        for key in ("allOf", "anyOf", "oneOf"):
            stack += [x for x in s.get(key, []) if isinstance(x, dict)]
        for key in ("then", "else", "if"):
            if isinstance(s.get(key), dict):
                stack.append(s[key])
        stack += [x for x in (s.get("dependentSchemas") or {}).values() if isinstance(x, dict)]
    return out


def _rank(values: list[Any], pss: list[Any], css: list[Any]) -> list[Any]:
    """Local counterexamples (valid for every producer schema, rejected by a consumer schema) first, then
    values valid for both, then the rest."""
    def score(v: Any) -> int:
        pok = all(_valid(x, v) for x in pss)
        cok = all(_valid(x, v) for x in css)
        return 0 if pok and not cok else 1 if pok else 2
    return sorted(values, key=score)


def _base_value(values: list[Any], pss: list[Any], css: list[Any]) -> Any:
    for v in values:
        if all(_valid(x, v) for x in pss) and all(_valid(x, v) for x in css):
            return v
    for v in values:
        if all(_valid(x, v) for x in pss):
            return v
    return values[0] if values else None


def _uniq(values: list[Any], limit: int) -> list[Any]:
    seen: set[str] = set()
    out = []
    for v in values:
        key = json.dumps(v, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(v)
            if len(out) >= limit:
                break
    return out


_POOL: tuple[Any, ...] = (None, 0, "a", 0.5, True, {}, [])


class _Gen:
    """Small candidate values near the boundaries of both schemas (valid or not: the validators judge)."""

    def __init__(self) -> None:
        self.memo: dict[tuple[Any, ...], list[Any]] = {}
        self.keep: list[Any] = []

    def values(self, ps: list[Any], cs: list[Any], depth: int = 0, limit: int = 12) -> list[Any]:
        key = (tuple(id(x) for x in ps), tuple(id(x) for x in cs), depth, limit)
        if key not in self.memo:
            self.keep.append((ps, cs))
            self.memo[key] = self._values(ps, cs, depth, limit)
        return self.memo[key]

    def _values(self, ps: list[Any], cs: list[Any], depth: int, limit: int) -> list[Any]:
        if depth > 4:
            return list(_POOL)
        fps = _flat(ps) or []
        if not fps and not any(isinstance(c, dict) and c for c in cs):
            return list(_POOL)
        # Producer unions: values of each alternative.
        alts = _split(fps) if fps else None
        if alts is not None and depth < 4:
            out: list[Any] = []
            per = max(4, limit // max(1, len(alts)))
            for alt in alts[:8]:
                out += self.values(alt, cs, depth + 1 if len(alts) > 4 else depth, per)
            return _uniq(out, limit * 2)
        ph, ch = _hints(fps), _hints([c for c in cs if isinstance(c, dict)])
        vals: list[Any] = []
        for h in [*ph, *ch]:
            if "const" in h:
                vals.append(h["const"])
            vals += list(h.get("enum", []))[:6]
        types: set[str] = set()
        for h in ph:
            types |= _types(h) or set()
            types |= _kind_of(h)
        if not types:
            for h in ch:
                types |= _types(h) or set()
                types |= _kind_of(h)
        if not types or not any(_types(h) for h in ph):
            types |= set(_TYPES) if not ph or not any(_types(h) for h in ph) else set()
        allh = [*ph, *ch]
        cds = [c for c in cs if isinstance(c, (dict, bool))]
        if "null" in types:
            vals.append(None)
        if "boolean" in types:
            vals += [False, True]
        if "integer" in types or "number" in types:
            vals += self._numbers(allh, "number" in types)
        if "string" in types:
            vals += self._strings(allh)
        if "object" in types:
            vals += self._objects(fps, ph, ch, depth)
        if "array" in types:
            vals += self._arrays(ph, ch, depth)
        if depth:
            vals = _rank(_uniq(vals, 200), fps, cds[:1])
        return _uniq(vals, limit if depth else limit * 30)

    def _numbers(self, hs: list[dict[str, Any]], floats: bool) -> list[Any]:
        out: list[Any] = [0, 0.5, 1, -1] if floats else [0, 1, -1]
        for h in hs:
            for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
                v = h.get(k)
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    base = math.floor(v)
                    out += [base - 1, base, base + 1, base + 2]
                    if floats:
                        out += [v - 0.5, v + 0.5, v]
            m = h.get("multipleOf")
            if isinstance(m, (int, float)) and not isinstance(m, bool):
                out += [m, 2 * m, 3 * m]
                if floats:
                    out.append(m / 2)
        if floats:
            out += [0.5, 1.5, -0.5]
        out += [10**6 + 1]
        return [int(v) if isinstance(v, float) and v.is_integer() and not floats else v for v in out]

    def _strings(self, hs: list[dict[str, Any]]) -> list[Any]:
        out: list[Any] = []
        pats = [h["pattern"] for h in hs if isinstance(h.get("pattern"), str)]
        for pat in pats:
            out += _regex_samples(pat)
        grown = []
        for h in hs:
            for k in ("minLength", "maxLength"):
                v = h.get(k)
                if isinstance(v, int) and v < 200:
                    for x in out:
                        for n in (v - 1, v, v + 1):
                            if x and n > len(x):
                                grown.append(x + x[-1] * (n - len(x)))
        out += grown
        samples = []
        for h in hs:
            f = h.get("format")
            if isinstance(f, str) and f in _FORMAT_SAMPLES:
                samples.append(_FORMAT_SAMPLES[f])
        out += samples
        for h in hs:
            for k in ("minLength", "maxLength"):
                v = h.get(k)
                if isinstance(v, int) and v < 200:
                    for s in samples:
                        for n in (v - 1, v, v + 1):
                            if n > len(s):
                                out += ["a" * (n - len(s)) + s, s + "a" * (n - len(s))]
        fill = [s for s in out if s] or ["a"]
        for h in hs:
            for k in ("minLength", "maxLength"):
                v = h.get(k)
                if isinstance(v, int) and v < 200:
                    for n in (v - 1, v, v + 1):
                        if n >= 0:
                            out.append("a" * n)
                            out += [(s * (n // max(1, len(s)) + 1))[:n] for s in fill[:2]]
        out += ["", "a", "ab", "1", "A-1"]
        return out

    def _objects(self, fps: list[dict[str, Any]], ph: list[dict[str, Any]], ch: list[dict[str, Any]],
                 depth: int) -> list[Any]:
        req: list[str] = []
        names: list[str] = []
        for h in ph:
            req += [k for k in h.get("required") or [] if isinstance(k, str)]
        for h in [*ph, *ch]:
            names += list(h.get("properties") or {})
            names += [k for k in h.get("required") or [] if isinstance(k, str)]
            names += list(h.get("dependentRequired") or {})
            names += [d for ds in (h.get("dependentRequired") or {}).values() for d in ds]
            names += list(h.get("dependentSchemas") or {})
            for pat in h.get("patternProperties") or {}:
                names += _regex_samples(pat, 2)
            pn = h.get("propertyNames")
            if isinstance(pn, dict):
                names += [v for v in pn.get("enum", []) if isinstance(v, str)]
                if isinstance(pn.get("pattern"), str):
                    names += _regex_samples(pn["pattern"], 2)
        names += ["x", "extra"]
        names = list(dict.fromkeys(names))
        req = list(dict.fromkeys(req))
        cands: dict[str, list[Any]] = {}
        firsts: dict[str, Any] = {}

        def for_key(k: str) -> list[Any]:
            if k not in cands:
                pk = [s for s, _ in _pprop(fps[0], k)] if len(fps) == 1 else []
                ck = [s for h in ch[:1] for s, _ in _pprop(h, k)]
                hp = [s for h in ph for s, _ in _pprop(h, k)]
                hc = [s for h in ch for s, _ in _pprop(h, k)]
                vs = self.values(hp, hc, depth + 1, 14)
                cands[k] = _rank(vs, pk, ck)
                firsts[k] = _base_value(vs, pk, ck)
            return cands[k]

        def first(k: str) -> Any:
            for_key(k)
            return firsts[k]

        base = {k: first(k) for k in req}
        out: list[Any] = [base, {}]
        optional = [k for k in names if k not in base]
        for k in req:
            out.append({n: v for n, v in base.items() if n != k})
        for k in names[:12]:
            for v in for_key(k)[:4]:
                out.append({**base, k: v})
        for h in [*ph, *ch]:
            for k, deps in (h.get("dependentRequired") or {}).items():
                full = {**base, k: first(k), **{d: first(d) for d in deps}}
                out.append(full)
                for d in deps:
                    out.append({n: v for n, v in full.items() if n != d or n in base})
            for k, ds in (h.get("dependentSchemas") or {}).items():
                cds = [x["dependentSchemas"][k] for x in ch if k in (x.get("dependentSchemas") or {})]
                for v in self.values([ds], cds, depth + 1, 6):
                    if isinstance(v, dict):
                        out.append({**base, **v, k: first(k)})
                        out.append({**base, **v, k: first(k), "x": 0, "y": 0})
        out.append({**base, **{k: first(k) for k in optional if k not in ("x", "extra")}})
        for k in optional:
            out.append({**base, k: first(k)})
        for k in names[12:]:
            for v in for_key(k)[:2]:
                out.append({**base, k: v})
        for v in (None, 0, "a", {}, []):
            out.append({**base, "x": v})
        for h in ch:
            for key in ("minProperties", "maxProperties"):
                n = h.get(key)
                if isinstance(n, int) and n < 20:
                    for size in (n - 1, n, n + 1):
                        obj = dict(base)
                        for k in [*optional, *[f"k{i}" for i in range(size)]]:
                            if len(obj) >= size:
                                break
                            obj[k] = first(k) if k in cands or k in names else 0
                        if len(obj) == size:
                            out.append(obj)
        return out

    def _arrays(self, ph: list[dict[str, Any]], ch: list[dict[str, Any]], depth: int) -> list[Any]:
        pitems = [h["items"] for h in ph if "items" in h]
        citems = [h["items"] for h in ch if "items" in h]
        pcont = [h["contains"] for h in [*ph, *ch] if "contains" in h]
        items = self.values(pitems, citems + pcont, depth + 1, 10)
        if not items:
            items = [0, "a", None]
        b0 = _base_value(items, pitems[:1], citems[:1])
        items = _uniq([b0, *_rank(items, pitems[:1], citems[:1])], 8)
        out: list[Any] = [[], [items[0]], [items[0], items[0]], items[:2], items[:3]]
        out += [[v] for v in items[1:]]
        out += [[items[0], v] for v in items[1:]]
        conts = self.values(pcont, [], depth + 1, 4) if pcont else []
        for v in conts:
            out += [[v], [v, v], [v, v, v], [items[0], v], [v, items[0]]]
        npre = max([len(h.get("prefixItems") or []) for h in [*ph, *ch]] or [0])
        if npre:
            pos = []
            for i in range(npre):
                pp = [h["prefixItems"][i] for h in ph if len(h.get("prefixItems") or []) > i]
                cp = [h["prefixItems"][i] for h in ch if len(h.get("prefixItems") or []) > i]
                vs = self.values(pp or pitems, cp, depth + 1, 8)
                b0 = _base_value(vs, (pp or pitems)[:1], cp[:1])
                pos.append(_uniq([b0, *_rank(vs, (pp or pitems)[:1], cp[:1])], 6) if vs else [None])
            tup = [p[0] for p in pos]
            for n in range(npre + 1):
                out.append(tup[:n])
            out.append([*tup, items[0]])
            out += [[*tup, v] for v in items[1:3]]
            for i, vs in enumerate(pos):
                for v in vs[1:]:
                    out.append([*tup[:i], v, *tup[i + 1:]])
                    out += [[*tup[:i], v, *tup[i + 1:], w] for w in conts[:2]]
        for h in [*ph, *ch]:
            for key in ("minItems", "maxItems", "minContains", "maxContains"):
                lim = h.get(key)
                if isinstance(lim, int) and lim < 20:
                    for size in (lim - 1, lim, lim + 1):
                        if size >= 0:
                            out.append([items[0]] * size)
                            out.append([items[i % len(items)] for i in range(size)])
                            if conts:
                                out.append([conts[0]] * size)
        return out


def _kind_of(h: dict[str, Any]) -> set[str]:
    ks = set(h)
    out = set()
    if ks & _NUMKW:
        out.add("number")
    if ks & _STRKW:
        out.add("string")
    if ks & (_ARRKW | {"unevaluatedItems"}):
        out.add("array")
    if ks & (_OBJKW | {"unevaluatedProperties"}):
        out.add("object")
    return out


# ----------------------------------------------------------------------------- validation by both validators


@lru_cache(maxsize=2048)
def _py_validator(key: str) -> Any:
    schema = json.loads(key)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def validated_by_both(producer: Any, consumer: Any, value: Any) -> bool:
    """True when jsonschema-rs *and* python-jsonschema both accept *value* under *producer* and reject it under
    *consumer*: the test a counterexample passes before it is reported."""
    try:
        if not compile_validator(producer).is_valid(value) or compile_validator(consumer).is_valid(value):
            return False
        pk = json.dumps(producer, sort_keys=True, default=str)
        ck = json.dumps(consumer, sort_keys=True, default=str)
        return bool(_py_validator(pk).is_valid(value)) and not _py_validator(ck).is_valid(value)
    except Exception:
        return False


def _first_error(schema: Any, value: Any) -> tuple[str, str, str, str]:
    for err in compile_validator(schema).iter_errors(value):
        path = list(err.schema_path)
        return ("".join(f"/{_esc(p)}" for p in path), "".join(f"/{_esc(p)}" for p in err.instance_path),
                str(path[-1]) if path else "false", str(err.message))
    return ("", "", "", "")


def _size(v: Any) -> int:
    return len(json.dumps(v, default=str))


def _targeted(producer: Any, consumer: Any, pc: Any, cc: Any) -> Any:
    try:
        cands = _Gen().values([pc], [cc])
    except (RecursionError, ValueError, TypeError):
        return NOT_FOUND
    pv, cv = compile_validator(producer), compile_validator(consumer)
    hits = []
    for v in cands:
        try:
            if pv.is_valid(v) and not cv.is_valid(v):
                hits.append(v)
        except Exception:
            continue
    for v in sorted(hits, key=_size):
        if validated_by_both(producer, consumer, v):
            return v
    return NOT_FOUND


def is_compatible(producer: Any, consumer: Any, *, max_examples: int = 100, confirm_examples: int = 25) -> Verdict:
    """Decide whether every message valid under *producer* is valid under *consumer*.

    Args:
        producer: the producer's payload JSON Schema (``$ref`` into other files resolved by the loader; local
            ``$ref``/``$anchor`` are resolved here).
        consumer: the consumer's payload JSON Schema.
        max_examples: budget of the property-based counterexample search when there is no proof.
        confirm_examples: budget of the property-based search run over a proven pair (0 skips it); a
            counterexample it finds overrides the proof.

    Returns:
        A :class:`Verdict`.

    Example::

        >>> is_compatible({"type": "integer"}, {"type": "number"}).status
        'ok'
        >>> v = is_compatible({"type": "object"}, {"type": "object", "required": ["id"]})
        >>> v.status, v.counterexample, v.consumer_path
        ('incompatible', {}, '/required')
    """
    def found(value: Any, reason: str) -> Verdict:
        cpath, ipath, kw, message = _first_error(consumer, value)
        if stop_or_none is None or stop_or_none.path != cpath:
            where = f"'{ipath[1:]}'" if ipath else "the message"
            reason = f"the consumer's '{kw}' at {cpath or '/'} rejects {where}: {message}"
        return Verdict("incompatible", value, cpath, ipath, reason, has_counterexample=True, keyword=kw)

    stop: _Stop
    stop_or_none: _Stop | None
    try:
        pc, cc = canonical(producer), canonical(consumer)
        res = _Prover().sub([pc], cc, "")
        stop_or_none = res
    except _Undecidable as exc:
        pc, cc = producer, consumer
        stop_or_none = _Stop(exc.keyword, "", exc.reason)
    except RecursionError:
        pc, cc = producer, consumer
        stop_or_none = _Stop("", "", "the schemas are nested too deeply")
    except Exception as exc:  # a schema form the proof did not foresee: undecided, never a crash of the gate
        pc, cc = producer, consumer
        stop_or_none = _Stop("", "", f"the proof stopped on an unexpected schema form ({type(exc).__name__})")

    w = _targeted(producer, consumer, pc, cc)
    if stop_or_none is None:
        if w is not NOT_FOUND:  # a proof bug never becomes a "safe"
            return found(w, "a producer message is rejected by the consumer")
        if confirm_examples:
            w = search(producer, lambda v: validated_by_both(producer, consumer, v), max_examples=confirm_examples)
            if w is not NOT_FOUND:
                return found(w, "a generated producer message is rejected by the consumer")
        return Verdict("ok", reason="every producer message is accepted")
    stop = stop_or_none
    if w is NOT_FOUND and max_examples:
        w = search(producer, lambda v: validated_by_both(producer, consumer, v), max_examples=max_examples)
    if w is not NOT_FOUND:
        return found(w, stop.reason if stop.keyword else "a generated producer message is rejected by the consumer")
    where = stop.path or "/"
    kw = stop.keyword or "?"
    return Verdict("unknown", None, stop.path, "",
                   f"undecided at '{kw}' ({where} of the consumer schema): {stop.reason}; no counterexample was found",
                   keyword=stop.keyword)

