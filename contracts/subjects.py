"""NATS subject patterns: matching a subject against a pattern and deciding whether two patterns overlap.

Tokens are separated by ``.``; ``*`` matches exactly one token, ``>`` (last token only) matches one or more.
"""

from __future__ import annotations

import re

__all__ = ["address_to_pattern", "is_valid_pattern", "matches", "overlaps"]

_PARAM = re.compile(r"\{[^{}]+\}")


def address_to_pattern(address: str) -> str:
    """Turn an AsyncAPI channel address into a NATS subject pattern (``{param}`` becomes ``*``)."""
    return _PARAM.sub("*", address)


def is_valid_pattern(pattern: str) -> bool:
    """True if *pattern* is a syntactically valid NATS subject (wildcards allowed)."""
    if not pattern or any(c.isspace() for c in pattern):
        return False
    tokens = pattern.split(".")
    for i, tok in enumerate(tokens):
        if tok == "":
            return False
        if tok == ">" and i != len(tokens) - 1:
            return False
        if len(tok) > 1 and ("*" in tok or ">" in tok):
            return False
    return True


def matches(pattern: str, subject: str) -> bool:
    """True if the concrete *subject* is matched by *pattern*."""
    return overlaps(pattern, subject)


def overlaps(a: str, b: str) -> bool:
    """True if some concrete subject is matched by both patterns *a* and *b*."""
    ta, tb = a.split("."), b.split(".")
    i = 0
    while i < len(ta) and i < len(tb):
        x, y = ta[i], tb[i]
        if x == ">" or y == ">":
            return True
        if x != "*" and y != "*" and x != y:
            return False
        i += 1
    return len(ta) == len(tb)
