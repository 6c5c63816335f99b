"""The system file's field readers: each names the file, the key and the fix in its one-sentence
:class:`~harness.errors.ConfigError`."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

from sagaproof.harness.errors import ConfigError

PLACEHOLDERS = ("port", "nats_url", "data_dir", "shared_dir", "python", "name", "service", "replica", "system_dir")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


class _Ctx:
    """Where we are in the file, to name it in error messages."""

    def __init__(self, path: Path, display: str):
        self.path = path
        self.display = display

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.display}: {key}: {message}")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid keys are: {', '.join(choices)}."


def _check_keys(ctx: _Ctx, where: str, table: dict[str, Any], allowed: list[str]) -> None:
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise ctx.fail(name, f"unknown key '{key}'; {_suggest(key, allowed)} Remove it or fix its spelling.")


def _typename(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _get(ctx: _Ctx, where: str, table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None,
         *, required: bool = False, example: str = "") -> Any:
    name = f"{where}.{key}" if where else key
    if key not in table:
        if required:
            hint = f" (for example {example})" if example else ""
            raise ctx.fail(name, f"is missing; add it{hint}.")
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        want = " or ".join(_typename(k()) if k not in (tuple,) else "a list" for k in kinds)
        raise ctx.fail(name, f"must be {want}, not {_typename(value)} ({value!r}).")
    return value


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a string like '500ms', '30s', '2m', '1h'; None if not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            return None
        n = float(m.group(1))
        unit = m.group(2) or "s"
        return n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return None


def _duration(ctx: _Ctx, where: str, table: dict[str, Any], key: str, default: float) -> float:
    if key not in table:
        return default
    seconds = parse_duration(table[key])
    if seconds is None:
        raise ctx.fail(f"{where}.{key}", f"must be a duration such as 500ms, 30s or 2m, not {table[key]!r}.")
    return seconds


def _check_placeholders(ctx: _Ctx, key: str, text: str) -> None:
    for m in _PLACEHOLDER_RE.finditer(text):
        if m.group(1) not in PLACEHOLDERS:
            raise ctx.fail(key, f"unknown placeholder '{{{m.group(1)}}}'; the placeholders are "
                                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)} (write '{{{{' for a literal brace).")


def expand(text: str, values: dict[str, str]) -> str:
    """Replace {placeholder}s in a command or env value ('{{' and '}}' are literal braces)."""
    out = _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text.replace("{{", "\0").replace("}}", "\1"))
    return out.replace("\0", "{").replace("\1", "}")


def _str_list(ctx: _Ctx, where: str, table: dict[str, Any], key: str, *, default: tuple[str, ...] = (),
              required: bool = False, example: str = "") -> tuple[str, ...]:
    value = _get(ctx, where, table, key, (list, str), None, required=required, example=example)
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ctx.fail(f"{where}.{key}[{i}]", f"must be a string, not {_typename(item)} ({item!r}).")
    return tuple(value)
