"""JSON decoding and encoding with the observable behaviour of Go's encoding/json.

The reference Toxiproxy server decodes request bodies with Go's `json.Decoder` onto structs,
so clients see its quirks: only the first JSON value is read (trailing bytes are ignored),
keys match struct fields case-insensitively, `null` leaves a field unchanged, and a type
mismatch is an error naming the Go struct field. Responses are compact JSON with `<`, `>` and
`&` escaped. This module reproduces those rules for the few types the API uses.
"""

from __future__ import annotations

import json
import math
import re
import struct
from decimal import Decimal
from typing import Any

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_SURROGATE = re.compile("[\ud800-\udfff]")


class DecodeError(Exception):
    """A request body could not be decoded; the message mimics Go's decoder message."""


class GoFloat(float):
    """A JSON number with a fraction or exponent, remembering its text (Go's errors quote it)."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> GoFloat:
        number = super().__new__(cls, text)
        number.text = text
        return number


class _NotJson(Exception):
    def __init__(self, constant: str) -> None:
        super().__init__(constant)
        self.constant = constant


def _reject_constant(constant: str) -> Any:
    raise _NotJson(constant)  # NaN, Infinity, -Infinity: Python extensions, not JSON


_DECODER = json.JSONDecoder(parse_float=GoFloat, parse_constant=_reject_constant)


def decode(raw: bytes) -> Any:
    """Decode the first JSON value in `raw` like `json.NewDecoder(body).Decode`.

    Only JSON is accepted (no NaN or Infinity), numbers keep their text for error messages,
    and a lone UTF-16 surrogate escape becomes U+FFFD, as Go's decoder does, so every decoded
    string can be encoded again.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("utf-8", errors="replace")
    stripped = text.lstrip(" \t\r\n")
    if not stripped:
        raise DecodeError("EOF")
    try:
        value, _end = _DECODER.raw_decode(stripped)
    except _NotJson as exc:
        if exc.constant.startswith("-"):
            raise DecodeError("invalid character 'I' in numeric literal") from exc
        raise DecodeError(f"invalid character '{exc.constant[0]}' looking for beginning of value") from exc
    except json.JSONDecodeError as exc:
        if exc.pos >= len(stripped):
            raise DecodeError("unexpected EOF") from exc
        ch = stripped[exc.pos]
        raise DecodeError(f"invalid character {ch!r} looking for beginning of value") from exc
    except RecursionError:
        raise DecodeError("exceeded max depth") from None  # deliberate: a thousand frames of recursion say nothing more
    if "\\u" in stripped and _SURROGATE.search(text_of(value)):
        value = _replace_surrogates(value)
    return value


def text_of(value: Any) -> str:
    """Every string in a decoded value, joined (to look for surrogates once)."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "".join(text_of(k) + text_of(v) for k, v in value.items())
    if isinstance(value, list):
        return "".join(text_of(v) for v in value)
    return ""


def _replace_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_replace_surrogates(k): _replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace_surrogates(v) for v in value]
    return value


def json_kind(value: Any) -> str:
    """The JSON type word Go uses in unmarshal errors."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(value: Any, struct_name: str, field: str, go_type: str) -> DecodeError:
    kind = json_kind(value)
    if kind == "number":
        kind = f"number {_number_text(value)}"
    return DecodeError(
        f"json: cannot unmarshal {kind} into Go struct field {struct_name}.{field} of type {go_type}"
    )


def _number_text(value: Any) -> str:
    if isinstance(value, GoFloat):
        return value.text
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return repr(value)
    return str(value)


def lookup(obj: dict[str, Any], field: str) -> tuple[bool, Any]:
    """Find `field` in a decoded object like Go does: exact key first, then case-insensitive."""
    if field in obj:
        return True, obj[field]
    lowered = field.lower()
    found = False
    value = None
    for key, val in obj.items():
        if key.lower() == lowered:
            found, value = True, val  # Go keeps the last matching key
    return found, value


def require_object(value: Any, go_type: str) -> dict[str, Any] | None:
    """Check that a body is an object (or null, which Go leaves as a no-op)."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DecodeError(f"json: cannot unmarshal {json_kind(value)} into Go value of type {go_type}")
    return value


def get_string(obj: dict[str, Any], field: str, default: str, struct_name: str) -> str:
    """Decode a string field (missing or null keeps `default`)."""
    found, value = lookup(obj, field)
    if not found or value is None:
        return default
    if not isinstance(value, str):
        raise _type_error(value, struct_name, field, "string")
    return value


def get_bool(obj: dict[str, Any], field: str, default: bool, struct_name: str) -> bool:
    """Decode a bool field (missing or null keeps `default`)."""
    found, value = lookup(obj, field)
    if not found or value is None:
        return default
    if not isinstance(value, bool):
        raise _type_error(value, struct_name, field, "bool")
    return value


def get_int(obj: dict[str, Any], field: str, default: int, struct_name: str) -> int:
    """Decode an int64 field: a float with a fraction or out of range is an error."""
    found, value = lookup(obj, field)
    if not found or value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, struct_name, field, "int64")
    if isinstance(value, float):
        # Go's decoder rejects any number literal with a fraction or exponent for ints.
        raise _type_error(value, struct_name, field, "int64")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise _type_error(value, struct_name, field, "int64")
    return value


def get_float(obj: dict[str, Any], field: str, default: float, struct_name: str, *, bits: int = 64) -> float:
    """Decode a float32/float64 field, rejecting values that overflow the Go type."""
    found, value = lookup(obj, field)
    if not found or value is None:
        return default
    go_type = f"float{bits}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _type_error(value, struct_name, field, go_type)
    number = float(value)
    if bits == 32:
        try:
            return to_float32(number)
        except OverflowError as exc:
            raise _type_error(value, struct_name, field, go_type) from exc
    if not math.isfinite(number):
        raise _type_error(value, struct_name, field, go_type)
    return number


def to_float32(value: float) -> float:
    """Round a float to the nearest float32 (raises OverflowError out of range, as Go's ParseFloat)."""
    if not math.isfinite(value):
        raise OverflowError(f"{value} is not a finite float32")
    rounded: float = struct.unpack("f", struct.pack("f", value))[0]
    if not math.isfinite(rounded):
        raise OverflowError(f"{value} is out of the float32 range")
    return rounded


def format_float(value: float, *, bits: int = 64) -> str:
    """Format a float as Go's encoding/json does (shortest round-trip, no `.0`)."""
    if value == 0:
        return "0"
    if bits == 32:
        text = ""
        for precision in range(1, 10):
            text = f"{value:.{precision}g}"
            if to_float32(float(text)) == value:
                break
    else:
        text = repr(value)
    magnitude = abs(value)
    if 1e-6 <= magnitude < 1e21:
        text = format(Decimal(text), "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text
    mantissa, _, exponent = format(Decimal(text), "e").partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    exp = int(exponent)
    return f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


_PLAIN = re.compile(r'[^"\\<>&\x00-\x1f\x7f-\U0010ffff]*')  # ASCII that JSON and Go write as it is


def encode(value: Any) -> str:
    """Compact JSON with Go's HTML-safe escaping of `<`, `>` and `&`."""
    if type(value) is str and _PLAIN.fullmatch(value):  # names and addresses: no escaping to do
        return '"' + value + '"'
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
