"""The built-in checks, each a function over the history (:data:`harness.checks.CHECKS` lists them in the
order their outcomes are reported): the broker checks, the saga checks (with "sagas judged"), the status
reads, the invariants, live contract conformance, recorder completeness and "fault schedule carried out"."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sagaproof.harness.checks.checker import CHECK_TITLES
from sagaproof.harness.checks.checker import CHECKS as SAGA_CHECKS
from sagaproof.harness.checks.context import CheckContext
from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.judging import _label, explain_unfinished, saga_result
from sagaproof.harness.checks.results import NOT_JUDGED, CheckOutcome

__all__ = ["SAGAS_JUDGED", "broker_checks", "fault_schedule", "invariants", "live_contracts", "own_lateness",
           "recorder_completeness", "saga_checks", "status_reads"]

SAGAS_JUDGED = "sagas judged"


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
