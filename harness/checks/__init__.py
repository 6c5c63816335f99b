"""The checks of a run (or of a pytest test's window): functions over the history, registered in one list.

A check is a function ``check(ctx: CheckContext) -> Iterable[CheckOutcome]``. It reads the history through
``ctx.history`` (a re-iterable stream of ``events.jsonl`` records; nothing is held in memory), judges what
falls in ``ctx.window``, and returns one or more :class:`~harness.checks.results.CheckOutcome`, each with its
:class:`~harness.checks.findings.Finding` list. The session runs every function in :data:`CHECKS`, in order, for
the CLI's ``run`` and for the pytest handle's ``check_sagas``; adding a check is one call::

    from sagaproof import CheckContext, CheckOutcome, register_check

    def no_poison(ctx: CheckContext):
        bad = [r for r in ctx.history.of("message") if ctx.window.holds(r) and r["subject"] == "poison"]
        yield CheckOutcome("no poison", not bad, f"{len(bad)} poison messages")

    register_check(no_poison)

The built-in checks, in the order their outcomes are reported: the broker checks of a run (delivery
guarantee, consumption, dead letters: :mod:`harness.checks.consumption`), the saga checks (with "sagas judged", which
fails when there was nothing to judge), the invariants, live contract conformance, recorder completeness and
"fault schedule carried out".

Memory stays flat however long the run. The saga checks read the history once (each line parsed once, by
orjson), keep of each message only what the checker reads, and split a long history by saga key into shards
of about :data:`SHARD_MESSAGES` messages (marshal blobs in one scratch file in the report directory), each
judged on its own into one verdict, the one a single pass gives (an instance's messages all land in one
shard: :func:`harness.checks.checker.check_stream`). The broker checks do the same by stream sequence (:mod:`harness.checks.consumption`).

This package's face is the registry (:data:`CHECKS`, :func:`register_check`, :func:`run_checks`); the checks
live in :mod:`~harness.checks.builtin`, the saga judging in :mod:`~harness.checks.judging`, what a check gets
in :mod:`~harness.checks.context`.
"""

from __future__ import annotations

from collections.abc import Iterable

from sagaproof.harness.checks.builtin import (
    SAGAS_JUDGED,
    broker_checks,
    fault_schedule,
    invariants,
    live_contracts,
    own_lateness,
    recorder_completeness,
    saga_checks,
    status_reads,
)
from sagaproof.harness.checks.context import CheckContext, CheckFn, Window
from sagaproof.harness.checks.judging import (
    SHARD_MESSAGES,
    _window_keys,
    explain_unfinished,
    key_of,
    merge_results,
    saga_result,
)
from sagaproof.harness.checks.results import CheckOutcome

__all__ = ["BUILTIN_CHECKS", "CHECKS", "SAGAS_JUDGED", "SHARD_MESSAGES", "CheckContext", "CheckFn", "Window",
           "_window_keys", "broker_checks", "explain_unfinished", "fault_schedule", "invariants", "key_of",
           "live_contracts", "merge_results", "own_lateness", "recorder_completeness", "register_check",
           "registered_checks", "run_checks", "saga_checks", "saga_result", "status_reads"]


def run_checks(ctx: CheckContext, checks: Iterable[CheckFn] | None = None) -> list[CheckOutcome]:
    """Run the checks (default :data:`CHECKS`) and return every outcome, in order."""
    out: list[CheckOutcome] = []
    for fn in list(CHECKS if checks is None else checks):
        out.extend(fn(ctx))
    return out


CHECKS: list[CheckFn] = [broker_checks, saga_checks, status_reads, invariants, live_contracts,
                         recorder_completeness, fault_schedule]


BUILTIN_CHECKS: tuple[CheckFn, ...] = tuple(CHECKS)


def registered_checks() -> list[CheckFn]:
    """The checks added with :func:`register_check` (not the built-in ones), in the order they were added."""
    return [fn for fn in CHECKS if fn not in BUILTIN_CHECKS]


def register_check(fn: CheckFn) -> CheckFn:
    """Add a check to every run and every pytest check (after the built-in ones); returns it (a decorator).

    Registering it again is harmless, also when its module was imported twice under two names (a plugin named
    by its path and imported by name elsewhere): a function of the same file and name is one check."""
    origin = _origin(fn)
    if fn not in CHECKS and (origin is None or origin not in {_origin(other) for other in CHECKS}):
        CHECKS.append(fn)
    return fn


def _origin(fn: CheckFn) -> tuple[str, str] | None:
    code = getattr(fn, "__code__", None)
    if code is None or getattr(fn, "__closure__", None) is not None:
        return None  # a callable object, or a closure a factory made (one of several): judged by identity only
    return code.co_filename, getattr(fn, "__qualname__", code.co_name)
