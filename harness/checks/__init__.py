"""The checks of a run (or of a pytest test's window): functions over the history, registered in one list.

A check is a function ``check(ctx: CheckContext) -> Iterable[CheckOutcome]``. It reads the history through
``ctx.history`` (a re-iterable stream of ``events.jsonl`` records; nothing is held in memory), judges what
falls in ``ctx.window``, and returns one or more :class:`~harness.checks.results.CheckOutcome`, each with its
:class:`~harness.checks.findings.Finding` list. The session runs every function in :data:`CHECKS`, in order, for
the CLI's ``run`` and for the pytest handle's ``check_sagas``; adding a check is one call::

    from sagaproof.harness.checks import CheckContext, register_check
    from sagaproof.harness.checks.results import CheckOutcome

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
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.checker import CHECK_TITLES, CheckResult, check_stream
from sagaproof.harness.checks.checker import CHECKS as SAGA_CHECKS
from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.results import NOT_JUDGED, CheckOutcome
from sagaproof.harness.config import SagaSpec, SystemSpec, field_at
from sagaproof.harness.events import Event
from sagaproof.harness.history import HistoryReader

__all__ = ["BUILTIN_CHECKS", "CHECKS", "CheckContext", "CheckFn", "Window", "key_of", "register_check",
           "registered_checks", "run_checks", "saga_result"]

SHARD_MESSAGES = 10_000  # messages per shard of the saga checks (about 6 MB of what they keep)
SAGAS_JUDGED = "sagas judged"


@dataclass(frozen=True)
class Window:
    """What a check judges: the sagas that started in ``[since, until)`` (all when both are None), or exactly
    the saga instances with these ``keys`` (each a key string, or ``(saga, key)``)."""

    since: float | None = None
    until: float | None = None
    keys: frozenset[str | tuple[str, str]] | None = None

    def holds(self, record: dict[str, Any]) -> bool:
        """True when the record's time is inside the window (for checks of single records)."""
        t = record.get("t", 0.0)
        return (self.since is None or t >= self.since) and (self.until is None or t < self.until)

    @property
    def everything(self) -> bool:
        return self.since is None and self.until is None and self.keys is None


@dataclass
class CheckContext:
    """What a check gets.

    Attributes:
        spec: the system file.
        history: every record so far (a re-iterable stream); narrow it with ``history.of("message", ...)``.
        window: what to judge.
        healed_at: history time when the last fault healed (deadlines count from here).
        end_at: history time the judgement is made at (a deadline after it is still pending).
        facts: what the session knows beyond the history: ``planned_faults`` (the nemesis schedule, fault
            dicts), ``schedule_tolerance``, ``validator`` (contracts were loaded), ``messages`` (recorded),
            ``scratch`` (a directory for temporary files), ``repro`` (the reproduce command).
        emit: emit an engine event (it reaches the history, the progress display, the reports, pytest).
    """

    spec: SystemSpec
    history: HistoryReader
    window: Window = field(default_factory=Window)
    healed_at: float = 0.0
    end_at: float = 0.0
    facts: dict[str, Any] = field(default_factory=dict)
    emit: Callable[[Event], None] = lambda event: None


CheckFn = Callable[[CheckContext], Iterable[CheckOutcome]]


def run_checks(ctx: CheckContext, checks: Iterable[CheckFn] | None = None) -> list[CheckOutcome]:
    """Run the checks (default :data:`CHECKS`) and return every outcome, in order."""
    out: list[CheckOutcome] = []
    for fn in list(CHECKS if checks is None else checks):
        out.extend(fn(ctx))
    return out


# --------------------------------------------------------------------------------------------- sagas


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


def saga_checks(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """The five saga checks, plus "sagas judged" (fails when the window had no saga to judge)."""
    sagas = ctx.spec.sagas
    if not sagas:
        yield CheckOutcome.not_judged(
            SAGAS_JUDGED, f"{ctx.spec.path} declares no [sagas], so no saga could be judged; declare each saga "
                          f"(its correlation key, start event, steps and terminal events) as docs/system-file.md shows")
        yield from _saga_checks_not_judged("the system file declares no [sagas]")
        return
    result = saga_result(ctx.history, sagas, ctx.window, healed_at=ctx.healed_at, end_at=ctx.end_at,
                         n_messages=int(ctx.facts.get("messages") or 0), scratch=ctx.facts.get("scratch"),
                         quiescent_at=ctx.facts.get("quiescent_at"))
    explain_unfinished(result, ctx.history, sagas, ctx.healed_at)
    repro = ctx.facts.get("repro")
    if repro:
        result.with_repro(repro)
    ctx.facts["saga_result"] = result
    if result.sagas_checked == 0:
        where = ("with the keys asked for" if ctx.window.keys is not None else
                 "in this window" if not ctx.window.everything else "in this run")
        text = (f"no saga started {where} (no {' or '.join(sorted({s.start for s in sagas.values()}))} recorded), "
                f"so nothing was judged; a check with nothing to judge does not pass")
        yield CheckOutcome(SAGAS_JUDGED, False, text, [text], [Finding(SAGAS_JUDGED, text, text)],
                           status=NOT_JUDGED)
        yield from _saga_checks_not_judged(f"no saga started {where}")
        return
    yield CheckOutcome(SAGAS_JUDGED, True, f"{result.sagas_checked} sagas judged")
    for name in SAGA_CHECKS:
        vs = result.by_check(name)
        findings = [Finding.from_violation(v) for v in vs]
        yield CheckOutcome(name, not vs, f"{CHECK_TITLES[name]}: {result.summary(name)}",
                           [f.message for f in findings], findings)


def _saga_checks_not_judged(why: str) -> Iterator[CheckOutcome]:
    """The five saga checks when there was no saga to judge: not judged (no finding of their own: "sagas
    judged" carries it)."""
    for name in SAGA_CHECKS:
        yield CheckOutcome(name, False, f"{CHECK_TITLES[name]}: not judged, {why} (see 'sagas judged')",
                           status=NOT_JUDGED)


# --------------------------------------------------------------------------------------------- others


def broker_checks(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """The broker's view (:mod:`harness.checks.consumption`): delivery guarantee, consumption, dead letters. They judge
    a whole run as it ends (by quiescence), so a run gives them ``facts["broker"]``; a pytest test's window does
    not, and they are left out there (the pytest session's report runs them over the whole session)."""
    broker = ctx.facts.get("broker")
    if not broker:
        return
    from sagaproof.harness.checks.consumption import check_broker, receives_from_contracts

    report = check_broker(ctx.history, receives=receives_from_contracts(broker.get("receives_from")),
                          streams=broker.get("streams") or {}, services=list(broker.get("services") or []),
                          sagas=ctx.spec.sagas, final=bool(broker.get("final", True)),
                          observing=broker.get("observing"), nothing_sent=bool(ctx.facts.get("nothing_sent")),
                          groups=broker.get("groups") or None, scratch=ctx.facts.get("scratch"),
                          messages=int(ctx.facts.get("messages") or 0))
    repro = ctx.facts.get("repro")
    if repro:
        report = report.with_repro(repro)
    ctx.facts["broker_report"] = report
    for o in report.outcomes():
        if not o.findings:
            o.findings = [Finding(o.name, f.title, f.message(repro), saga=getattr(f, "saga", None),
                                  key=None if getattr(f, "key", None) is None else str(f.key),
                                  subject=getattr(f, "subject", None),
                                  faults=list(getattr(f, "faults", {}) or {}))
                          for f in report.findings.get(o.name, [])]
        yield o



def invariants(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """The invariants evaluated in the window (``invariant`` records; the session evaluates them)."""
    for rec in ctx.history.of("invariant"):
        if not ctx.window.holds(rec):
            continue
        name = f"invariant {rec.get('name')}"
        ok = bool(rec.get("ok"))
        details = list(rec.get("details") or [])
        findings = [] if ok else [Finding(name, str(rec.get("summary") or ""), "\n".join(details) or name,
                                          t=rec.get("t"))]
        yield CheckOutcome(name, ok, str(rec.get("summary") or ""), details, findings)


def live_contracts(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """Every recorded message matched its contract (``contract_violation`` records in the window)."""
    name = "live contract conformance"
    if not ctx.facts.get("validator"):
        yield CheckOutcome.not_applicable(name, "no service declares a contract, so there is nothing to hold the "
                                                "recorded messages to")
        return
    n = int(ctx.facts.get("window_messages", ctx.facts.get("messages", 0)) or 0)
    if n == 0:
        yield _nothing_recorded(ctx, name, "so no message could be held to its contract")
        return
    findings: list[Finding] = []
    count = 0
    for rec in ctx.history.of("contract_violation"):
        if not ctx.window.holds(rec):
            continue
        count += 1
        if len(findings) < 200:
            findings.append(Finding.from_contract(rec.get("violation") or {}, rec.get("t")))
    yield CheckOutcome("live contract conformance", not count,
                       "every message matched its contract" if not count else
                       f"{count} message(s) broke their contract", [f.title for f in findings[:20]], findings)


def recorder_completeness(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """The recorder saw every message the streams hold (``recorder_problem`` records in the window)."""
    name = "recorder completeness"
    problems = [rec for rec in ctx.history.of("recorder_problem") if ctx.window.holds(rec)]
    n = int(ctx.facts.get("window_messages", ctx.facts.get("messages", 0)) or 0)
    findings = [Finding(name, str(r.get("problem")), str(r.get("problem")), t=r.get("t")) for r in problems]
    if problems:
        yield CheckOutcome(name, False, str(problems[0].get("problem")), [f.title for f in findings], findings)
        return
    if n == 0:
        yield _nothing_recorded(ctx, name, "so there was nothing to prove complete")
        return
    checked = ctx.facts.get("cross_checked")
    if checked is not None and not checked:
        yield CheckOutcome.not_applicable(
            name, f"{n} messages recorded, but no JetStream stream held any to cross-check the recorder against "
                  f"(core NATS messages carry no sequence number, so a lost one could not be seen)")
        return
    streams = (f" (checked against stream{'s' if len(checked) != 1 else ''} {', '.join(sorted(checked))})"
               if checked else "")
    yield CheckOutcome(name, True, f"{n} messages recorded, none lost{streams}")


def _nothing_recorded(ctx: CheckContext, name: str, consequence: str) -> CheckOutcome:
    """The outcome of a check of messages when none was recorded: not judged, or not applicable where the
    session says nothing was sent on purpose (a pytest session whose tests sent no traffic)."""
    where = "in this window" if not ctx.window.everything else "in this run"
    if ctx.facts.get("nothing_sent"):
        return CheckOutcome.not_applicable(name, f"no message was recorded {where} and the tests sent none, "
                                                 f"{consequence}")
    return CheckOutcome.not_judged(name, f"no message was recorded {where}, {consequence}; check that the "
                                         f"workload starts sagas and that the services reach NATS")


def fault_schedule(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """Every planned fault was injected, and none started later than its own length after its planned start
    (``[chaos] schedule_tolerance`` is the fraction that may miss)."""
    planned: list[dict[str, Any]] = list(ctx.facts.get("planned_faults") or [])
    tolerance = float(ctx.facts.get("schedule_tolerance") or 0.0)
    started: dict[str, dict[str, Any]] = {}
    failed: dict[str, tuple[dict[str, Any], str, float]] = {}
    for rec in ctx.history.of("fault_start", "fault_failed"):
        if not ctx.window.holds(rec):
            continue
        f = rec.get("fault") or {}
        fid = str(f.get("id"))
        if rec["kind"] == "fault_start":
            started[fid] = f
        elif rec.get("stage", "inject") == "inject":
            failed[fid] = (f, str(rec.get("error")), float(rec.get("t") or 0.0))
    if not planned and not started and not failed:
        chaos = ctx.facts.get("chaos")
        if chaos:
            yield CheckOutcome.not_judged(
                "fault schedule carried out",
                f"the chaos phase planned no fault ({chaos}), so this run is not a chaos run; widen the fault "
                f"menu (--faults, [chaos] faults), raise --intensity or run longer, or run with --no-chaos")
        else:
            yield CheckOutcome.not_applicable("fault schedule carried out",
                                              "no fault was planned or injected" + (
                                                  " in this window" if not ctx.window.everything else
                                                  " (the run had no chaos phase)"))
        return
    findings: list[Finding] = []
    for fid, (f, error, t) in failed.items():
        planned_at = (f" (planned at t={_num(f.get('start'))}s on the schedule's clock, for "
                      f"{_num(f.get('duration'))}s)" if f.get("source", "nemesis") == "nemesis" else "")
        findings.append(Finding("fault schedule carried out", f"{_label(f)} could not be injected: {error}",
                                f"fault {_label(f)} could not be injected: {error}{planned_at}", t=t, faults=[fid],
                                data={"fault": f, "status": "failed", "error": error}))
    for f in planned:
        fid = str(f.get("id"))
        if fid in failed:
            continue
        got = started.get(fid)
        if got is None:
            findings.append(Finding("fault schedule carried out", f"{_label(f)} never started",
                                    f"fault {_label(f)} (planned at t={_num(f.get('start'))}s) never started "
                                    f"(the run ended or was interrupted first)", faults=[fid],
                                    data={"fault": f, "status": "not started"}))
            continue
        late = own_lateness(got)
        duration = f.get("duration")
        if late is not None and isinstance(duration, int | float) and late > duration:
            findings.append(Finding("fault schedule carried out",
                                    f"{_label(f)} started {late:.2f}s late, longer than its own {duration:.2f}s",
                                    f"fault {_label(f)} was planned at t={_num(f.get('start'))}s (schedule clock) for "
                                    f"{duration:.2f}s but the harness started it {late:.2f}s late (at "
                                    f"t={_num(got.get('started_at'))}s), so what was planned never happened",
                                    t=got.get("started_at"), faults=[fid],
                                    data={"fault": got, "status": "late"}))
    total = max(len(planned), len(started) + len(failed))
    missed = len(findings)
    ok = missed <= tolerance * total
    summary = (f"{total - missed} of {total} faults carried out as planned"
               + (f"; {missed} not (tolerance {tolerance:g})" if missed else ""))
    yield CheckOutcome("fault schedule carried out", ok, summary, [f.title for f in findings], findings)


def own_lateness(f: dict[str, Any]) -> float | None:
    """How late a fault started through the harness's own fault: ``late_by`` less the time it waited for its
    target's previous fault to be healed; None when its lateness is not judged (a crash loop's later crash)."""
    late = f.get("late_by")
    if not f.get("judge_lateness", True) or not isinstance(late, int | float):
        return None
    return float(late) - float(f.get("waited_for_target") or 0.0)


def _num(x: Any) -> str:
    return f"{x:.3f}" if isinstance(x, int | float) else "?"


# The consumers' side first: a lost delivery explains a stuck saga.
def status_reads(ctx: CheckContext) -> Iterator[CheckOutcome]:
    """The status-read checks (:mod:`harness.checks.reads`): what clients read agrees with the wire."""
    from sagaproof.harness.checks.reads import read_checks

    yield from read_checks(ctx)


CHECKS: list[CheckFn] = [broker_checks, saga_checks, status_reads, invariants, live_contracts,
                         recorder_completeness, fault_schedule]


BUILTIN_CHECKS: tuple[CheckFn, ...] = tuple(CHECKS)


def registered_checks() -> list[CheckFn]:
    """The checks added with :func:`register_check` (not the built-in ones), in the order they were added."""
    return [fn for fn in CHECKS if fn not in BUILTIN_CHECKS]


def register_check(fn: CheckFn) -> CheckFn:
    """Add a check to every run and every pytest check (after the built-in ones); returns it (a decorator)."""
    if fn not in CHECKS:
        CHECKS.append(fn)
    return fn
