"""NATS subject patterns, defined once for every part of sagaproof.

Tokens are separated by ``.``; ``*`` matches exactly one token and ``>`` (last token only) one or more.
The empty string is neither a valid subject nor a valid pattern: it matches nothing and overlaps nothing.
(Callers that give the empty string a meaning of their own, such as a toxic's ``subject`` attribute where
"" means every message, say so at their call site.) This module imports nothing from sagaproof.
"""

from __future__ import annotations

import re

__all__ = ["address_to_pattern", "is_valid_pattern", "matches", "overlaps", "pattern_regex"]

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
    """True if the concrete *subject* is matched by *pattern* (``"orders.*"`` matches ``"orders.created"``)."""
    if not pattern or not subject:
        return False
    ptoks = pattern.split(".")
    stoks = subject.split(".")
    for i, ptok in enumerate(ptoks):
        if ptok == ">":
            return len(stoks) > i
        if i >= len(stoks):
            return False
        if ptok != "*" and ptok != stoks[i]:
            return False
    return len(stoks) == len(ptoks)


def overlaps(a: str, b: str) -> bool:
    """True if some concrete subject is matched by both patterns *a* and *b*."""
    if not a or not b:
        return False
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


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A compiled regex equivalent to :func:`matches` for *pattern* (``{param}`` tokens count as ``*``)."""
    if not pattern:
        return re.compile(r"(?!)")
    parts = []
    for tok in address_to_pattern(pattern).split("."):
        if tok == ">":
            parts.append(r"[^.]+(?:\.[^.]+)*")
            break
        parts.append(r"[^.]+" if tok == "*" else re.escape(tok))
    return re.compile(r"\.".join(parts) + r"\Z")
