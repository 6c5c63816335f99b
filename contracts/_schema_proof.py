"""Schema compatibility, part 3: the structural proof that every value the producer allows satisfies the
consumer (:class:`_Prover`)."""


from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from sagaproof.contracts._schema_canon import (
    _ARRKW,
    _FORMAT_LENGTH,
    _FORMATS,
    _NUMKW,
    _OBJKW,
    _STRKW,
    _TYPES,
)
from sagaproof.contracts._schema_util import (
    _bound,
    _bound_ok,
    _esc,
    _first_keyword,
    _matches,
    _num,
    _pattern_length,
    _short,
    _tighter,
    _types,
    _valid,
)

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


def _p_schemas(ps: list[dict[str, Any]], closed: set[str] | None, k: str) -> list[Any]:
    """The producer's schemas of property *k* (``False`` when its properties are closed and *k* is not one)."""
    if closed is not None and k not in closed:
        return [False]
    return [s for p in ps for s, _ in _pprop(p, k)]


def _forbidden(ps: list[dict[str, Any]], closed: set[str] | None, k: str) -> bool:
    """True when the producer never sends property *k*."""
    return _flat(_p_schemas(ps, closed, k)) is None


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

    def _consumer(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str) -> _Stop | None:  # noqa: C901, PLR0912 - not split yet (issue 25)
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
        for part in (self._object_properties, self._object_counts, self._object_dependencies):
            r = part(ps, c, loc, req, closed)
            if r is not None:
                return r
        return None

    def _object_properties(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str, req: set[str],
                           closed: set[str] | None) -> _Stop | None:
        """Each property the consumer declares, its patternProperties and its additionalProperties."""
        names: set[str] = set(req) | set(c.get("properties") or {}) | set(c.get("dependentRequired") or {}) \
            | set(c.get("dependentSchemas") or {}) | set(c.get("required") or [])
        for p in ps:
            names |= set(p.get("properties") or {})
        if closed is not None:
            names |= closed
        for k in sorted(names):
            cks = _pprop(c, k)
            if not cks or _forbidden(ps, closed, k):
                continue
            pk = _p_schemas(ps, closed, k)
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
        return None

    def _object_counts(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str, req: set[str],
                       closed: set[str] | None) -> _Stop | None:
        """required, minProperties, maxProperties and propertyNames."""
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
                pmax = min(pmax, len([k for k in closed if not _forbidden(ps, closed, k)]))
            if pmax > c["maxProperties"]:
                return _Stop("maxProperties", f"{loc}/maxProperties", "the producer may send more properties than "
                                                                      f"the consumer's maxProperties {c['maxProperties']}")
        if "propertyNames" in c:
            pn = [{"type": "string"}, *[p["propertyNames"] for p in ps if "propertyNames" in p]]
            if self.sub(pn, c["propertyNames"], f"{loc}/propertyNames") is not None:
                allowed = [k for k in (closed or set()) if not _forbidden(ps, closed, k)]
                if closed is None or not all(_valid(c["propertyNames"], k) for k in allowed):
                    return _Stop("propertyNames", f"{loc}/propertyNames", "the producer's property names are not "
                                                                          "shown to satisfy the consumer's propertyNames")
        return None

    def _object_dependencies(self, ps: list[dict[str, Any]], c: dict[str, Any], loc: str, req: set[str],
                             closed: set[str] | None) -> _Stop | None:
        """dependentRequired and dependentSchemas."""
        for k, deps in (c.get("dependentRequired") or {}).items():
            if _forbidden(ps, closed, k):
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
            if _forbidden(ps, closed, k):
                continue
            extra = [{"required": [k]}, *[p["dependentSchemas"][k] for p in ps if k in (p.get("dependentSchemas") or {})]]
            if self.sub([*ps, *extra], s, f"{loc}/dependentSchemas/{_esc(k)}") is not None:
                return _Stop("dependentSchemas", f"{loc}/dependentSchemas/{_esc(k)}", "the producer's messages with "
                             f"'{k}' are not shown to satisfy the consumer's dependentSchemas")
        return None

    # -- disjointness (for not, oneOf and if)

    def disjoint(self, ps: list[Any], x: Any, depth: int = 0) -> bool:  # noqa: C901, PLR0912 - not split yet (issue 25)
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
