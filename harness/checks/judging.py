"""The saga checks' judging: the saga checker (:mod:`harness.checks.checker`) over the instances in a window,
reading the history as a stream, sharded by saga key when it is long, the shards' results merged.

Memory stays flat however long the run. The saga checks read the history once (each line parsed once, by
orjson), keep of each message only what the checker reads, and split a long history by saga key into shards
of about :data:`SHARD_MESSAGES` messages (marshal blobs in one scratch file in the report directory), each
judged on its own into one verdict, the one a single pass gives (an instance's messages all land in one
shard: :func:`harness.checks.checker.check_stream`).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.checker import CHECKS as SAGA_CHECKS
from sagaproof.harness.checks.checker import CheckResult, check_stream
from sagaproof.harness.checks.context import Window
from sagaproof.harness.config import SagaSpec, field_at
from sagaproof.harness.history import HistoryReader

__all__ = ["SHARD_MESSAGES", "explain_unfinished", "key_of", "merge_results", "saga_result"]

SHARD_MESSAGES = 10_000  # messages per shard of the saga checks (about 6 MB of what they keep)


def key_of(data: Any, path: str) -> str | None:
    """The correlation key of a payload as the checker reads it (:func:`harness.config.field_at`: the field of
    that name, else the dotted path into nested objects), as a string; None when there is none."""
    value = field_at(data, path)
    return None if value is None or isinstance(value, dict | list) else str(value)


def _op_key(rec: dict[str, Any]) -> str | None:
    key = rec.get("key")
    return None if key is None else str(key)


def _rank(check: str) -> int:
    return SAGA_CHECKS.index(check) if check in SAGA_CHECKS else len(SAGA_CHECKS)


def merge_results(parts: list[CheckResult], *, healed_at: float, end_at: float) -> CheckResult:
    """One :class:`CheckResult` from the results of disjoint sets of saga instances (shards, sagas)."""
    if len(parts) == 1:
        return parts[0]
    out = CheckResult(healed_at=healed_at, end_at=end_at)

    def merge(values: list[Any]) -> Any:
        v0 = next((v for v in values if v is not None), None)
        if v0 is None:
            return None
        if isinstance(v0, bool):
            return any(values)
        if isinstance(v0, int):
            return sum(v or 0 for v in values)
        if isinstance(v0, float):
            return max(v for v in values if v is not None)
        if isinstance(v0, list):
            return [x for v in values if v for x in v]
        if isinstance(v0, dict):
            keys = dict.fromkeys(k for v in values if v for k in v)
            return {k: merge([v.get(k) for v in values if v and k in v]) for k in keys}
        return v0

    for f in dataclasses.fields(CheckResult):
        if f.name in ("healed_at", "end_at"):
            continue
        values = [getattr(p, f.name) for p in parts]
        if f.name == "convergence":  # per saga instance; parts of one saga hold disjoint keys
            conv: dict[str, float] = {}
            for p in parts:
                if conv.keys().isdisjoint(p.convergence):
                    conv.update(p.convergence)
                else:  # one key in two sagas (of different key paths): the later outcome, as merge() does
                    for k, v in p.convergence.items():
                        conv[k] = max(conv[k], v) if k in conv else v
            out.convergence = conv
        elif f.name == "violations":
            merged = [v for p in parts for v in p.violations]
            merged.sort(key=lambda v: (_rank(v.check), v.at, str(v.key)))
            setattr(out, f.name, merged)
        else:
            setattr(out, f.name, merge(values))
    return out


def _window_keys(history: HistoryReader, sagas: dict[str, SagaSpec], window: Window) -> dict[str, set[str]]:
    """saga -> the keys of its instances in the window: those whose start event is in it (or whose start
    request was accepted in it), or those asked for."""
    if window.keys is not None:
        out: dict[str, set[str]] = {name: set() for name in sagas}
        for wanted in window.keys:
            if isinstance(wanted, tuple):
                if wanted[0] in out:
                    out[wanted[0]].add(str(wanted[1]))
            else:
                for keys in out.values():
                    keys.add(str(wanted))
        return out
    starts: dict[str, list[str]] = {}
    for name, spec in sagas.items():
        starts.setdefault(spec.start, []).append(name)
    only = next(iter(sagas)) if len(sagas) == 1 else None
    out = {name: set() for name in sagas}
    for rec in history.of("message", "operation"):
        if not window.holds(rec):
            continue
        if rec["kind"] == "operation":
            saga, k = rec.get("saga") or only, _op_key(rec)
            if rec.get("outcome") == "ok" and saga in out and k is not None:
                out[str(saga)].add(k)
            continue
        for name in starts.get(rec.get("subject"), ()):  # type: ignore[arg-type]
            k = key_of(rec.get("data"), sagas[name].key)
            if k is not None:
                out[name].add(k)
    return out


Keep = Callable[[str | None, str | None], bool]  # (saga of an operation or None for a message, key) -> judge it?


def _judge(records: HistoryReader, sagas: dict[str, SagaSpec], key_path: str, keep: Keep,
           healed_at: float, end_at: float, n_messages: int, scratch: Path | None,
           quiescent_at: float | None) -> CheckResult:
    """check_history over the records of these sagas (all keyed by `key_path`), in one pass that parses each
    line once, split by saga key into shards of about :data:`SHARD_MESSAGES` messages when the history is longer
    (:func:`harness.checks.checker.check_stream`: the same verdict as one pass over the whole history)."""
    shards = max(1, math.ceil(n_messages / SHARD_MESSAGES))
    return check_stream(records.of("message", "operation", "fault_start", "fault_end"), sagas, healed_at=healed_at,
                        end_at=end_at, quiescent_at=quiescent_at, keep=None if keep is _keep_all else keep,
                        shards=shards, scratch=scratch)


def _keep_all(saga: str | None, k: str | None) -> bool:
    return True


def saga_result(history: HistoryReader, sagas: dict[str, SagaSpec], window: Window, *, healed_at: float,
                end_at: float, n_messages: int = 0, scratch: Path | None = None,
                quiescent_at: float | None = None) -> CheckResult:
    """The saga checker's verdict on the instances in the window, reading the history as a stream."""
    if not sagas:
        return CheckResult(healed_at=healed_at, end_at=end_at)
    if window.everything:
        groups: dict[str, dict[str, SagaSpec]] = {}
        for name, s in sagas.items():
            groups.setdefault(s.key, {})[name] = s
        if len(groups) == 1:
            [(path, group)] = groups.items()
            return _judge(history, group, path, _keep_all, healed_at, end_at, n_messages, scratch, quiescent_at)

        def of_group(g: dict[str, SagaSpec]) -> Keep:
            return lambda saga, k: saga is None or saga in g

        parts = [_judge(history, g, path, of_group(g), healed_at, end_at, n_messages, scratch, quiescent_at)
                 for path, g in groups.items()]
        result = merge_results(parts, healed_at=healed_at, end_at=end_at)
        result.messages_seen = n_messages or result.messages_seen
        return result
    keys = _window_keys(history, sagas, window)
    only = next(iter(sagas)) if len(sagas) == 1 else None
    parts = []
    for name, s in sagas.items():
        wanted = keys[name]
        if not wanted:
            continue

        def keep(saga: str | None, k: str | None, name: str = name, wanted: set[str] = wanted) -> bool:
            if k is None or k not in wanted:
                return False
            return saga is None or (saga or only) == name  # a message, or this saga's start request

        parts.append(_judge(history, {name: s}, s.key, keep, healed_at, end_at, n_messages, scratch, quiescent_at))
    if not parts:
        return CheckResult(healed_at=healed_at, end_at=end_at)
    return merge_results(parts, healed_at=healed_at, end_at=end_at)


def _fault_intervals(history: HistoryReader) -> dict[str, tuple[float, float | None, dict[str, Any]]]:
    out: dict[str, tuple[float, float | None, dict[str, Any]]] = {}
    for rec in history.of("fault_start", "fault_end"):
        if rec["kind"] == "fault_start":
            f = rec.get("fault") or {}
            out[str(f.get("id"))] = (float(rec.get("t") or 0.0), None, f)
        else:
            fid = str(rec.get("fault_id"))
            if fid in out:
                start, _, f = out[fid]
                out[fid] = (start, float(rec.get("t") or 0.0), f)
    return out


def _label(f: dict[str, Any]) -> str:
    return f"{f.get('id')} {f.get('kind', '?')}" + (f" {f['target']}" if f.get("target") else "")


def explain_unfinished(result: CheckResult, history: HistoryReader, sagas: dict[str, SagaSpec],
                       healed_at: float) -> None:
    """For each saga that never finished, name the faults active from its last event to its deadline (a
    fault that lost the next event came after the last one seen, so the per-event fault lists miss it)."""
    unfinished = [v for v in result.violations if v.check == "termination" and v.events
                  and not any("outcome:" in str(e.get("role", "")) for e in v.events)]
    if not unfinished:
        return
    # The faults in the order they started: start, end (infinity while active), id, description, label (made
    # once). A history in time order lists them by start, so those begun by a deadline are a prefix; which of
    # them lasted past the last event is a comparison per fault, done by C loops (a long run has thousands).
    intervals = _fault_intervals(history)
    starts = [s for s, _, _ in intervals.values()]
    ends = [math.inf if e is None else e for _, e, _ in intervals.values()]
    ids = list(intervals)
    described = [f for _, _, f in intervals.values()]
    labels = [_label(f) for f in described]
    in_order = all(a <= b for a, b in zip(starts, starts[1:], strict=False))
    for v in unfinished:
        spec = sagas.get(v.saga)
        if spec is None:
            continue
        last_t = float(v.events[-1]["t"])
        start_t = next((float(e["t"]) for e in v.events if "start" in str(e.get("role", "")).split(" + ")),
                       float(v.events[0]["t"]))
        deadline_at = max(healed_at, start_t) + spec.deadline
        if in_order:
            n = bisect.bisect_right(starts, deadline_at)
            hit = list(map(last_t.__le__, ends[:n]))  # ended at or after the last event (or never)
        else:
            n = len(starts)
            hit = [s <= deadline_at and e >= last_t for s, e in zip(starts, ends, strict=True)]
        names = ", ".join(itertools.compress(labels[:n], hit)) or "none"
        v.detail = (v.detail + "; " if v.detail else "") + (
            f"faults active from its last event (t={last_t:.3f}s) to its deadline (t={deadline_at:.3f}s): {names}")
        known = v.faults
        known.update({fid: f for fid, f in zip(itertools.compress(ids[:n], hit), itertools.compress(described[:n], hit),
                                               strict=True) if fid not in known})
