"""Schema compatibility, part 2: small helpers over canonical schemas (types, numeric bounds, patterns,
validators)."""


from __future__ import annotations

import json
import math
import re
from fractions import Fraction
from functools import lru_cache
from typing import Any

from sagaproof.contracts.generate import compile_validator

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


def _first_keyword(schema: Any, value: Any) -> str:
    """The keyword of *schema* that *value* fails first ("" when it fails none)."""
    for err in compile_validator(schema).iter_errors(value):
        path = list(err.schema_path)
        return str(path[-1]) if path else ""
    return ""
