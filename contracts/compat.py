"""Producer/consumer schema compatibility: is every message the producer's schema allows accepted by the
consumer's schema (P ⊆ C)?

Two parts:

1. A structural decision over the common subset of JSON Schema (type, required, properties,
   additionalProperties, enum, const, format, numeric and length bounds, items, nullable, allOf/anyOf/oneOf
   of those). It answers *yes*, *no* (with where), or *unknown* for keywords it does not model.
2. A property-based search (schemathesis/hypothesis, deterministic) for a counterexample: a value valid
   under P and rejected by C. It runs where the structural answer is *no* (to produce a small witness,
   first locally at the offending sub-schema, then spliced into a full message), *unknown* (to decide), and
   *yes* (a small budget, to confirm). Every counterexample is checked with jsonschema-rs before it is
   reported, so a reported counterexample is always real.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Literal

from sagaproof.contracts.generate import NOT_FOUND, compile_validator, search

__all__ = ["Verdict", "is_compatible"]

Status = Literal["ok", "incompatible", "unknown"]

# Keywords that never constrain a value: annotations, identifiers, and definitions (every $ref is inlined
# before this module sees a schema). Vendor extensions (x-...) are annotations too, see _inert().
_ANNOT = {"title", "description", "$comment", "examples", "example", "deprecated", "readOnly", "writeOnly",
          "default", "$schema", "$id", "$anchor", "$dynamicAnchor", "discriminator", "x-parser-schema-id",
          "contentMediaType", "contentEncoding", "contentSchema", "externalDocs", "$defs", "definitions"}


def _inert(key: str) -> bool:
    """True for a keyword that does not constrain the value (an annotation or an x- extension)."""
    return key in _ANNOT or key.startswith("x-")
_HANDLED = {"type", "enum", "const", "anyOf", "oneOf", "allOf", "minimum", "maximum", "exclusiveMinimum",
            "exclusiveMaximum", "multipleOf", "minLength", "maxLength", "format", "pattern", "items",
            "minItems", "maxItems", "uniqueItems", "required", "properties", "additionalProperties"}
# Keywords sound to accept when the producer has the very same value at the same place.
_EQ_SAFE = {"pattern", "multipleOf", "propertyNames", "minProperties", "maxProperties", "dependentRequired",
            "not", "patternProperties", "prefixItems", "contains", "dependencies", "if", "then", "else",
            "dependentSchemas", "unevaluatedProperties", "unevaluatedItems", "minContains", "maxContains"}
_TYPES = ("null", "boolean", "integer", "number", "string", "array", "object")
_NUM = {"integer", "number"}


@dataclass
class Verdict:
    """The answer to "does the consumer accept every message the producer may send?".

    Attributes:
        status: ``ok``, ``incompatible`` or ``unknown`` (could not be decided; no counterexample found).
        counterexample: a small message valid for the producer and rejected by the consumer (when found).
        consumer_path: JSON pointer into the consumer schema of the keyword that rejects it.
        instance_path: JSON pointer into the counterexample of the rejected value.
        reason: one sentence saying why.
    """

    status: Status
    counterexample: Any = None
    consumer_path: str = ""
    instance_path: str = ""
    reason: str = ""
    has_counterexample: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"status": self.status, "reason": self.reason, "consumer_path": self.consumer_path,
                             "instance_path": self.instance_path}
        if self.has_counterexample:
            d["counterexample"] = self.counterexample
        return d


# ----------------------------------------------------------------------------- structural part


@dataclass
class _Yes:
    pass


@dataclass
class _Unknown:
    reason: str


@dataclass
class _No:
    reason: str
    cpath: str
    steps: list[tuple[str, Any, Any]]  # ("prop", key, child P schema) / ("item", None, child P schema)
    p_sub: Any
    c_sub: Any
    certain: bool = True
    hint: tuple[str, Any] | None = None  # ("missing", key) / ("extra", key)
    witness: Any = field(default=NOT_FOUND)


_Res = _Yes | _Unknown | _No
YES = _Yes()


def _esc(tok: Any) -> str:
    return str(tok).replace("~", "~0").replace("/", "~1")


def _types(s: dict[str, Any]) -> set[str] | None:
    t = s.get("type")
    if t is None:
        return None
    return {t} if isinstance(t, str) else set(t)


def _trivial(s: Any) -> bool:
    return s is True or (isinstance(s, dict) and all(_inert(k) for k in s))


def _bound(s: dict[str, Any], lower: bool) -> tuple[Fraction, bool] | None:
    inc_key, exc_key = ("minimum", "exclusiveMinimum") if lower else ("maximum", "exclusiveMaximum")
    best: tuple[Fraction, bool] | None = None
    for key, exclusive in ((inc_key, False), (exc_key, True)):
        v = s.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue
        cand = (Fraction(str(v)), exclusive)
        if best is None:
            best = cand
        elif lower and (cand[0] > best[0] or (cand[0] == best[0] and exclusive)):
            best = cand
        elif not lower and (cand[0] < best[0] or (cand[0] == best[0] and exclusive)):
            best = cand
    return best


def _bound_ok(pb: tuple[Fraction, bool] | None, cb: tuple[Fraction, bool] | None, lower: bool) -> bool:
    if cb is None:
        return True
    if pb is None:
        return False
    (pv, pex), (cv, cex) = pb, cb
    if pv == cv:
        return pex or not cex
    return pv > cv if lower else pv < cv


def _merge(parts: list[Any]) -> dict[str, Any] | None:
    """Merge schemas whose keywords do not interact into one (exact), else None."""
    out: dict[str, Any] = {}
    for part in parts:
        if part is True:
            continue
        if not isinstance(part, dict):
            return None
        for k, v in part.items():
            if _inert(k):
                continue
            if k in out and out[k] != v:
                return None
            out[k] = v
    props = {"properties", "patternProperties"}
    if "additionalProperties" in out and props & set(out):
        # additionalProperties depends on the properties of its own schema object: merging changes meaning
        # unless they came from the same part.
        owners = [i for i, p in enumerate(parts) if isinstance(p, dict) and (props | {"additionalProperties"}) & set(p)]
        if len(owners) > 1:
            return None
    return out


def _finite_values(p: dict[str, Any]) -> list[Any] | None:
    if "const" in p:
        return [p["const"]]
    if isinstance(p.get("enum"), list):
        return list(p["enum"])
    t = _types(p)
    if t is not None and t <= {"null", "boolean"}:
        vals: list[Any] = []
        if "null" in t:
            vals.append(None)
        if "boolean" in t:
            vals += [False, True]
        return vals
    return None


def _first_error(schema: Any, value: Any) -> tuple[str, str]:
    for err in compile_validator(schema).iter_errors(value):
        return ("".join(f"/{_esc(p)}" for p in err.schema_path), "".join(f"/{_esc(p)}" for p in err.instance_path))
    return ("", "")


def _disjoint(p: Any, c: Any) -> bool:
    """True if provably no value is valid under both *p* and *c*."""
    if p is False or c is False:
        return True
    if not isinstance(p, dict) or not isinstance(c, dict):
        return False
    vals = _finite_values(p)
    if vals is not None:
        pv, cv = compile_validator(p), compile_validator(c)
        return not any(pv.is_valid(v) and cv.is_valid(v) for v in vals)
    pt, ct = _types(p), _types(c)
    if pt is not None and ct is not None:
        def widen(ts: set[str]) -> set[str]:
            return ts | ({"integer"} if "number" in ts else set())
        if not (widen(pt) & widen(ct)) and not ("integer" in pt and "number" in ct):
            return True
    preq = set(p.get("required", []))
    pprops, cprops = p.get("properties", {}) or {}, c.get("properties", {}) or {}
    return any(k in cprops and k in pprops and _disjoint(pprops[k], cprops[k]) for k in preq)


class _Checker:
    def sub(self, p: Any, c: Any, cptr: str, steps: list[tuple[str, Any, Any]]) -> _Res:
        if _trivial(c) or p is False:
            return YES
        if c is False:
            return _No("the consumer schema accepts nothing here", cptr, steps, p, c)
        if p is True:
            p = {}
        if not isinstance(p, dict) or not isinstance(c, dict):
            return _Unknown("schema is not an object")

        # Producer has a finite set of values: decide exactly with the validators.
        vals = _finite_values(p)
        if vals is not None and ("enum" in p or "const" in p):
            pv, cv = compile_validator(p), compile_validator(c)
            for v in vals:
                if pv.is_valid(v) and not cv.is_valid(v):
                    cp, _ = _first_error(c, v)
                    return _No(f"the producer may send {_short(v)}, which the consumer rejects", cptr + cp, steps,
                               p, c, witness=v)
            return YES

        # Producer unions / intersections.
        if "allOf" in p:
            merged = _merge([{k: v for k, v in p.items() if k != "allOf"}, *p["allOf"]])
            if merged is not None:
                return self.sub(merged, c, cptr, steps)
            for part in p["allOf"]:
                if isinstance(self.sub(part, c, cptr, steps), _Yes):
                    return YES
            return _Unknown("producer allOf could not be merged")
        for key in ("anyOf", "oneOf"):
            if key in p:
                rest = {k: v for k, v in p.items() if k != key}
                branches = []
                for b in p[key]:
                    m = _merge([rest, b]) if rest else b
                    if m is None:
                        return _Unknown(f"producer {key} with sibling keywords could not be split")
                    branches.append(m)
                unknown: _Res | None = None
                for b in branches:
                    r = self.sub(b, c, cptr, steps)
                    if isinstance(r, _No):
                        if key == "oneOf":
                            r.certain = False  # the value might also match another branch
                        return r
                    if isinstance(r, _Unknown):
                        unknown = r
                return unknown or YES

        # A producer with several types against a consumer union: decide type by type.
        pts = _types(p)
        if pts is not None and len(pts) > 1 and ("anyOf" in c or "oneOf" in c):
            for t in sorted(pts):
                r = self.sub({**p, "type": t}, c, cptr, steps)
                if not isinstance(r, _Yes):
                    return r
            return YES

        # Consumer intersections and unions.
        if "allOf" in c:
            rest = {k: v for k, v in c.items() if k != "allOf"}
            unknown = None
            for i, part in enumerate([*c["allOf"], rest]):
                path = f"{cptr}/allOf/{i}" if i < len(c["allOf"]) else cptr
                r = self.sub(p, part, path, steps)
                if isinstance(r, _No):
                    return r
                if isinstance(r, _Unknown):
                    unknown = r
            return unknown or YES
        for key in ("anyOf", "oneOf"):
            if key in c:
                rest = {k: v for k, v in c.items() if k != key}
                if not _trivial(rest):
                    r = self.sub(p, rest, cptr, steps)
                    if not isinstance(r, _Yes):
                        return r
                branches = c[key]
                for i, b in enumerate(branches):
                    if isinstance(self.sub(p, b, f"{cptr}/{key}/{i}", steps), _Yes):
                        if key == "anyOf" or all(_disjoint(p, o) for j, o in enumerate(branches) if j != i):
                            return YES
                        return _Unknown("the message may match more than one consumer oneOf branch")
                return _No(f"no branch of the consumer's {key} accepts every producer message", f"{cptr}/{key}",
                           steps, p, c, certain=False)

        for k, v in c.items():
            if k in _HANDLED or _inert(k):
                continue
            if k in _EQ_SAFE and p.get(k) == v:
                continue
            return _Unknown(f"consumer keyword '{k}' is not decided structurally")

        if "enum" in c or "const" in c:
            allowed = [c["const"]] if "const" in c else c["enum"]
            return _No(f"the consumer accepts only {_short(allowed)}; the producer does not restrict the value",
                       f"{cptr}/{'const' if 'const' in c else 'enum'}", steps, p, c, certain=False)

        pt, ct = _types(p), _types(c)
        if ct is not None:
            if pt is None:
                return _No(f"the consumer requires type {_fmt_types(ct)}; the producer does not restrict the type",
                           f"{cptr}/type", steps, p, c, certain="patternProperties" not in p and "not" not in p)
            for t in sorted(pt):
                if t in ct or (t == "integer" and "number" in ct):
                    continue
                if t == "number" and "integer" in ct:
                    why = "the producer may send a non-integer number where the consumer requires an integer"
                else:
                    why = f"the producer may send {t} where the consumer requires {_fmt_types(ct)}"
                return _No(why, f"{cptr}/type", steps, {**p, "type": t}, c, certain=t != "number")
        kinds = pt if pt is not None else set(_TYPES)
        results: list[_Res] = []
        if kinds & _NUM:
            results.append(self._numbers(p, c, cptr, steps))
        if "string" in kinds:
            results.append(self._strings(p, c, cptr, steps))
        if "array" in kinds:
            results.append(self._arrays(p, c, cptr, steps))
        if "object" in kinds:
            results.append(self._objects(p, c, cptr, steps))
        for r in results:
            if isinstance(r, _No):
                if pt is None or len(pt) > 1:
                    r.certain = False
                return r
        for r in results:
            if isinstance(r, _Unknown):
                return r
        return YES

    def _numbers(self, p: dict[str, Any], c: dict[str, Any], cptr: str, steps: list[Any]) -> _Res:
        for lower in (True, False):
            cb = _bound(c, lower)
            if not _bound_ok(_bound(p, lower), cb, lower):
                key = ("exclusiveMinimum" if cb and cb[1] else "minimum") if lower else \
                      ("exclusiveMaximum" if cb and cb[1] else "maximum")
                what = "below" if lower else "above"
                return _No(f"the producer may send a number {what} the consumer's {key} {_num(c[key])}", f"{cptr}/{key}",
                           steps, p, c)
        if "multipleOf" in c:
            m = Fraction(str(c["multipleOf"]))
            k = p.get("multipleOf")
            if k is None and _types(p) == {"integer"}:
                k = 1
            if k is None or (Fraction(str(k)) / m).denominator != 1:
                return _No(f"the producer's numbers are not all multiples of {_num(c['multipleOf'])}", f"{cptr}/multipleOf",
                           steps, p, c)
        return YES

    def _strings(self, p: dict[str, Any], c: dict[str, Any], cptr: str, steps: list[Any]) -> _Res:
        bounds = _pattern_length(p["pattern"]) if isinstance(p.get("pattern"), str) else None
        if bounds is not None:  # a pattern such as ^[A-Z]{3}$ fixes the length as surely as minLength does
            p = {**p, "minLength": max(p.get("minLength", 0), bounds[0])}
            if bounds[1] is not None:
                p["maxLength"] = min(p.get("maxLength", bounds[1]), bounds[1])
        if p.get("minLength", 0) < c.get("minLength", 0):
            return _No(f"the producer may send a string shorter than the consumer's minLength {_num(c['minLength'])}",
                       f"{cptr}/minLength", steps, p, c)
        if "maxLength" in c and p.get("maxLength", float("inf")) > c["maxLength"]:
            return _No(f"the producer may send a string longer than the consumer's maxLength {_num(c['maxLength'])}",
                       f"{cptr}/maxLength", steps, p, c)
        if "format" in c and p.get("format") != c["format"]:
            return _No(f"the consumer requires format '{c['format']}', the producer "
                       + (f"declares '{p['format']}'" if "format" in p else "declares no format"),
                       f"{cptr}/format", steps, p, c, certain="pattern" not in p)
        if "pattern" in c and p.get("pattern") != c["pattern"]:
            return _No(f"the consumer requires pattern {_short(c['pattern'], 200)}", f"{cptr}/pattern", steps, p, c,
                       certain=False)
        return YES

    def _arrays(self, p: dict[str, Any], c: dict[str, Any], cptr: str, steps: list[Any]) -> _Res:
        if p.get("minItems", 0) < c.get("minItems", 0):
            return _No(f"the producer may send fewer items than the consumer's minItems {_num(c['minItems'])}",
                       f"{cptr}/minItems", steps, p, c)
        if "maxItems" in c and p.get("maxItems", float("inf")) > c["maxItems"]:
            return _No(f"the producer may send more items than the consumer's maxItems {_num(c['maxItems'])}",
                       f"{cptr}/maxItems", steps, p, c)
        if c.get("uniqueItems") and not p.get("uniqueItems") and p.get("maxItems", 2) > 1:
            return _No("the consumer requires unique items; the producer may repeat one", f"{cptr}/uniqueItems",
                       steps, p, c, certain=False)
        if "items" in c:
            pi = p.get("items", True)
            if isinstance(pi, list) or isinstance(c["items"], list):
                return YES if pi == c["items"] else _Unknown("tuple-form items are not decided structurally")
            return self.sub(pi, c["items"], f"{cptr}/items", [*steps, ("item", None, pi)])
        return YES

    def _objects(self, p: dict[str, Any], c: dict[str, Any], cptr: str, steps: list[Any]) -> _Res:
        preq, creq = set(p.get("required", [])), c.get("required", [])
        for k in creq:
            if k not in preq:
                return _No(f"the consumer requires '{k}', which the producer does not always send",
                           f"{cptr}/required", steps, p, c, hint=("missing", k))
        pprops, cprops = p.get("properties", {}) or {}, c.get("properties", {}) or {}
        pap, cap = p.get("additionalProperties", True), c.get("additionalProperties", True)
        if "patternProperties" in p and pap is not True:
            return _Unknown("producer patternProperties are not decided structurally")
        unknown: _Res | None = None
        for k in sorted(set(pprops) | set(cprops)):
            ps = pprops.get(k, pap)
            if ps is False or (k not in pprops and pap is True and _trivial(cprops.get(k, True))):
                continue
            if k not in pprops and pap is True and k not in cprops:
                continue
            cs_ = cprops.get(k, cap)
            path = f"{cptr}/properties/{_esc(k)}" if k in cprops else f"{cptr}/additionalProperties"
            if "patternProperties" in c and k not in cprops:
                return _Unknown("consumer patternProperties are not decided structurally")
            r = self.sub(ps, cs_, path, [*steps, ("prop", k, ps)])
            if isinstance(r, _No):
                if k not in pprops:
                    r.reason = f"the producer may send '{k}' as any value: " + r.reason
                return r
            if isinstance(r, _Unknown):
                unknown = r
        if pap is not False and not _trivial(cap):
            if "patternProperties" in c:
                return _Unknown("consumer patternProperties are not decided structurally")
            extra = "extra"
            while extra in pprops or extra in cprops:
                extra += "_"
            r = self.sub(pap, cap, f"{cptr}/additionalProperties", [*steps, ("prop", extra, pap)])
            if isinstance(r, _No):
                if cap is False:
                    r = _No("the producer may send properties the consumer does not declare "
                            "(consumer has additionalProperties: false)", f"{cptr}/additionalProperties",
                            steps, p, c, hint=("extra", extra))
                return r
            if isinstance(r, _Unknown):
                unknown = r
        return unknown or YES


def _num(v: Any) -> str:
    """A number as JSON Schema writes it: 1, not 1.0."""
    return str(int(v)) if isinstance(v, float) and v.is_integer() else _short(v)


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


def _short(v: Any, limit: int = 60) -> str:
    import json

    s = json.dumps(v, default=str)
    return s if len(s) <= limit else s[: limit - 3] + "..."


def _fmt_types(ts: set[str]) -> str:
    return " or ".join(sorted(ts))


# ----------------------------------------------------------------------------- witnesses


def _minimal(schema: Any, budget: int) -> Any:
    return search(schema, lambda _v: True, max_examples=budget)


def _local_witness(no: _No, budget: int) -> Any:
    if no.witness is not NOT_FOUND:
        return no.witness
    cv = compile_validator(no.c_sub)
    w = search(no.p_sub, lambda v: not cv.is_valid(v), max_examples=budget)
    if w is not NOT_FOUND or no.hint is None:
        return w
    kind, key = no.hint
    pv = compile_validator(no.p_sub)
    if kind == "missing":
        base = search(no.p_sub, lambda v: isinstance(v, dict) and key in v, max_examples=budget)
        if isinstance(base, dict):
            base = dict(base)
            del base[key]
            return base if pv.is_valid(base) and not cv.is_valid(base) else NOT_FOUND
    if kind == "extra":
        base = _minimal(no.p_sub, budget)
        if isinstance(base, dict):
            pap = no.p_sub.get("additionalProperties", True)
            val = None if pap is True or _trivial(pap) else _minimal(pap, budget)
            if val is not NOT_FOUND:
                base = {**base, key: val}
                return base if pv.is_valid(base) and not cv.is_valid(base) else NOT_FOUND
    return NOT_FOUND


def _splice(producer: Any, steps: list[tuple[str, Any, Any]], leaf: Any, budget: int) -> Any:
    if not steps:
        return leaf
    root = _minimal(producer, budget)
    if root is NOT_FOUND:
        return NOT_FOUND
    root = copy.deepcopy(root)
    holder: list[Any] = [root]
    cur: Any = holder
    idx: Any = 0
    for kind, key, child_schema in steps:
        node = cur[idx]
        if kind == "prop":
            if not isinstance(node, dict):
                return NOT_FOUND
            if key not in node:
                child = _minimal(child_schema, budget)
                if child is NOT_FOUND:
                    return NOT_FOUND
                node[key] = copy.deepcopy(child)
            cur, idx = node, key
        else:
            if not isinstance(node, list):
                return NOT_FOUND
            if not node:
                child = _minimal(child_schema, budget)
                if child is NOT_FOUND:
                    return NOT_FOUND
                node.append(copy.deepcopy(child))
            cur, idx = node, 0
    cur[idx] = copy.deepcopy(leaf)
    return holder[0]


def is_compatible(producer: Any, consumer: Any, *, max_examples: int = 100, confirm_examples: int = 25) -> Verdict:
    """Decide whether every message valid under *producer* is valid under *consumer*.

    Args:
        producer: the producer's payload JSON Schema (resolved, no ``$ref``).
        consumer: the consumer's payload JSON Schema.
        max_examples: budget of the counterexample search when the structural answer is not *yes*.
        confirm_examples: budget of the confirming search when the structural answer is *yes* (0 skips it).

    Returns:
        A :class:`Verdict`; ``incompatible`` verdicts carry a small counterexample when one was found, and the
        consumer schema path that rejects it.

    Example::

        >>> is_compatible({"type": "integer"}, {"type": "number"}).status
        'ok'
        >>> v = is_compatible({"type": "object"}, {"type": "object", "required": ["id"]})
        >>> v.status, v.counterexample, v.consumer_path
        ('incompatible', {}, '/required')
    """
    cv = compile_validator(consumer)
    res = _Checker().sub(producer, consumer, "", [])

    def found(value: Any, reason: str) -> Verdict:
        cpath, ipath = _first_error(consumer, value)
        return Verdict("incompatible", value, cpath, ipath, reason, has_counterexample=True)

    def global_search(budget: int) -> Any:
        return search(producer, lambda v: not cv.is_valid(v), max_examples=budget)

    if isinstance(res, _Yes):
        if confirm_examples:
            w = global_search(confirm_examples)
            if w is not NOT_FOUND:
                return found(w, "a generated producer message is rejected by the consumer")
        return Verdict("ok", reason="every producer message is accepted")
    if isinstance(res, _No):
        leaf = _local_witness(res, max_examples)
        if leaf is not NOT_FOUND:
            w = _splice(producer, res.steps, leaf, max_examples)
            if w is not NOT_FOUND and compile_validator(producer).is_valid(w) and not cv.is_valid(w):
                return found(w, res.reason)
        w = global_search(max_examples)
        if w is not NOT_FOUND:
            return found(w, res.reason)
        if res.certain:
            return Verdict("incompatible", None, res.cpath, _ptr(res.steps), res.reason)
        return Verdict("unknown", None, res.cpath, _ptr(res.steps),
                       f"possibly incompatible ({res.reason}), but no counterexample was found")
    w = global_search(max_examples)
    if w is not NOT_FOUND:
        return found(w, "a generated producer message is rejected by the consumer")
    return Verdict("unknown", reason=f"{res.reason}; no counterexample in {max_examples} generated messages")


def _ptr(steps: list[tuple[str, Any, Any]]) -> str:
    return "".join(f"/{_esc(k)}" if kind == "prop" else "/0" for kind, k, _ in steps)
