"""Waiting for a condition: call a function until it passes or a time limit is reached.

Used by the environment (``System.eventually``, for tests and invariants) and by the engine (``SessionHandle``);
it knows nothing of runs. Polling is bounded by the caller's ``timeout``; the interval is the only sleep.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["eventually"]


def eventually(fn: Callable[[], Any], timeout: float, interval: float = 0.25, *,
               settled: Callable[[], bool] | None = None) -> tuple[bool, str]:
    """Call fn until it passes (returns None/True, raises nothing), `timeout` passes, or -- when `settled` is
    given -- it has failed twice in a row while ``settled()`` said nothing can change any more.
    Returns (ok, last failure)."""
    deadline = time.monotonic() + timeout
    last = ""
    failed_settled = 0
    while True:
        try:
            out = fn()
            if out is None or out is True:
                return True, ""
            last = out if isinstance(out, str) else f"returned {out!r}"
        except AssertionError as exc:
            last = str(exc) or "assertion failed"
        except Exception as exc:  # noqa: BLE001 - an invariant that crashes is a failed invariant
            last = f"{type(exc).__name__}: {exc}"
        if settled is not None and settled():
            failed_settled += 1
            if failed_settled >= 2:
                return False, last
        else:
            failed_settled = 0
        if time.monotonic() >= deadline:
            return False, last
        time.sleep(interval)
