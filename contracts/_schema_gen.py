"""Schema compatibility, part 4: counterexample candidates read from both schemas (:class:`_Gen`)."""


from __future__ import annotations

import json
import math
import re
import sre_constants
import sre_parse
from typing import Any, cast

from sagaproof.contracts._schema_canon import (
    _ARRKW,
    _NUMKW,
    _OBJKW,
    _STRKW,
    _TYPES,
)
from sagaproof.contracts._schema_proof import (
    _flat,
    _pprop,
    _split,
)
from sagaproof.contracts._schema_util import (
    _matches,
    _types,
    _valid,
)

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


def _object_names(ph: list[dict[str, Any]], ch: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """The producer's required property names, and every name either side mentions (properties, required,
    dependencies, samples of property patterns and names), plus two it does not."""
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
    return list(dict.fromkeys(req)), list(dict.fromkeys(names))


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

    def _strings(self, hs: list[dict[str, Any]]) -> list[Any]:  # noqa: C901 - not split yet (issue 25)
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

    def _objects(self, fps: list[dict[str, Any]], ph: list[dict[str, Any]], ch: list[dict[str, Any]],  # noqa: C901 - not split yet (issue 25)
                 depth: int) -> list[Any]:
        req, names = _object_names(ph, ch)
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
