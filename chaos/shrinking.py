"""Zeller's delta debugging (ddmin): shrink a failing list (a fault schedule) to the items that matter."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

__all__ = ["ddmin"]

T = TypeVar("T")


def ddmin(items: Sequence[T], fails: Callable[[list[T]], bool], max_runs: int = 64) -> list[T]:
    """Shrink `items` (which fail) to a 1-minimal failing subset, calling `fails` at most `max_runs` times.

    If the budget runs out, the smallest failing subset found so far is returned.
    """
    current = list(items)
    n = 2
    runs = 0
    while len(current) >= 2:
        size = len(current)
        chunks = [current[i * size // n : (i + 1) * size // n] for i in range(n)]
        reduced = False
        for i, chunk in enumerate(chunks):
            if runs >= max_runs:
                return current
            runs += 1
            if chunk and fails(chunk):
                current, n, reduced = chunk, 2, True
                break
            if n > 2:
                complement = [x for j, c in enumerate(chunks) if j != i for x in c]
                if runs >= max_runs:
                    return current
                runs += 1
                if fails(complement):
                    current, n, reduced = complement, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= len(current):
                break
            n = min(2 * n, len(current))
    return current
