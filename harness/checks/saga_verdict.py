"""The verdict of the saga checks, built instance by instance (see :mod:`harness.checks.checker`): each
instance's analysis, its deadline and the faults active at its events, rendered as :class:`SagaViolation` and
counted into one :class:`CheckResult`."""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable
from typing import Any

from sagaproof.harness.checks.saga_model import (
    _ALT,
    _EID,
    _PROD,
    _RID,
    _SEQ,
    _T,
    STEP_OK,
    Row,
    _Analysis,
    _Model,
)
from sagaproof.harness.checks.saga_result import _RANK, CHECKS, EXPECTED, CheckResult, SagaViolation


class _Verdict:
    """The verdict, built instance by instance (over one pass, or shard after shard)."""

    def __init__(self, models: list[_Model], healed_at: float, end_at: float, quiescent_at: float | None) -> None:
        self.models = models
        self.by_name = {m.name: m for m in models}
        self.healed_at = healed_at
        self.end_at = end_at
        self.quiescent_at = quiescent_at
        self.result = CheckResult(healed_at=healed_at, end_at=end_at, quiescent_at=quiescent_at)
        counts = {c: {"passed": 0, "failed": 0} for c in CHECKS}
        counts["termination"]["pending"] = 0
        counts["termination"]["late"] = 0
        counts["no_lost_request"]["pending"] = 0
        self.counts = counts
        self.outcomes = {"success": 0, "abort": 0, "none": 0, "both": 0}
        self.ops = {"ok": 0, "fail": 0, "unknown": 0, "unkeyed": 0}
        self.found: list[tuple[int, float, str, SagaViolation]] = []
        self.last_terminal: float | None = None
        self.clean = self.clean_pending = self.checked = self.dups = 0

    def judge(self, instances: list[dict[str, list[Any]]], operations: list[dict[str, Any]],
              faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> None:
        """Judge these instances (``instances[saga index][key]``: role set ids and rows, interleaved) and these
        start requests (whose instances, if any, are among them)."""
        healed_at, end_at, quiescent_at = self.healed_at, self.end_at, self.quiescent_at
        result = self.result
        counts = self.counts
        outcomes = self.outcomes
        found = self.found
        final = quiescent_at is not None  # quiescent: what is still owed never comes
        multi = len(self.models) > 1
        last_terminal = self.last_terminal
        convergence = result.convergence
        clean = clean_pending = checked = dups = 0
        pending = result.pending
        for m in self.models:
            deadline = m.spec.deadline
            cache = m.cache
            group = instances[m.index]
            for key, inst in group.items():
                checked += 1
                sig = tuple(inst[0::2])
                a = cache.get(sig)
                if a is None:
                    a = m.analysis(sig)
                if a.repeats:  # the same subject twice: drop wire duplicates before judging
                    inst, dropped = _drop_duplicates(m, inst)
                    if dropped:
                        dups += dropped
                        group[key] = inst
                        sig = tuple(inst[0::2])
                        a = m.analysis(sig)
                outcomes[a.outcome] += 1
                t_first = inst[1][_T] or 0.0
                start_t = (inst[2 * a.start + 1][_T] or 0.0) if a.start >= 0 else t_first
                deadline_at = (healed_at if healed_at > start_t else start_t) + deadline
                ft = -1.0
                if a.first_terminal >= 0:
                    ft = inst[2 * a.first_terminal + 1][_T] or 0.0
                    convergence[f"{m.name}/{key}" if multi else key] = round(ft - start_t, 6)
                    if last_terminal is None or ft > last_terminal:
                        last_terminal = ft
                    if ft > deadline_at:  # late: reported; a violation only under a latency objective (see _judge)
                        counts["termination"]["late"] += 1
                        result.late.append((m.name, key, round(ft - deadline_at, 6)))
                        if a.clean and (m.spec.latency_objective is None or
                                        ft <= deadline_at - deadline + m.spec.latency_objective):
                            clean += 1
                            continue
                    elif a.clean:
                        clean += 1
                        continue
                elif a.clean and end_at < deadline_at and not final:  # no outcome yet, but still within its deadline
                    clean_pending += 1
                    pending.append((m.name, key))
                    continue
                # The slow path: something to report, or a deadline to judge.
                vs = _judge(m, key, inst, a, deadline, deadline_at, ft, end_at, faults, timeline, quiescent_at)
                failed = {v.check for v in vs}
                for c in CHECKS:
                    if c == "no_lost_request":
                        continue
                    if c in failed:
                        counts[c]["failed"] += 1
                    elif c == "termination" and a.first_terminal < 0:
                        counts[c]["pending"] += 1
                        pending.append((m.name, key))
                    else:
                        counts[c]["passed"] += 1
                for v in vs:
                    found.append((_RANK[v.check], float(t_first), key, v))
        self.last_terminal = last_terminal
        self.clean += clean
        self.clean_pending += clean_pending
        self.checked += checked
        self.dups += dups

        self._requests(instances, operations, faults, timeline)

    def _requests(self, instances: list[dict[str, list[Any]]], operations: list[dict[str, Any]],
                  faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> None:
        """The client's view: every accepted start request started its saga."""
        healed_at, end_at = self.healed_at, self.end_at
        counts = self.counts
        found = self.found
        final = self.quiescent_at is not None  # quiescent: what is still owed never comes
        ops = self.ops
        models = self.models
        for op in operations:
            outcome = op.get("outcome")
            if outcome in ops:
                ops[outcome] += 1
            if outcome != "ok":
                continue
            name = op.get("saga")
            model = self.by_name.get(name) if name else (models[0] if len(models) == 1 else None)
            raw_key = op.get("key")
            if model is None or raw_key is None:
                ops["unkeyed"] += 1
                continue
            op_key = str(raw_key)
            op_inst = instances[model.index].get(op_key)
            if op_inst is not None and model.analysis(tuple(op_inst[0::2])).start >= 0:
                counts["no_lost_request"]["passed"] += 1
                continue
            done = float(op.get("completed") or op.get("t") or 0.0)
            due = max(healed_at, done) + model.spec.deadline
            if end_at < due and not final:
                counts["no_lost_request"]["pending"] += 1
                continue
            counts["no_lost_request"]["failed"] += 1
            found.append((_RANK["no_lost_request"], done, op_key,
                          _lost_request(model, op_key, op, op_inst, due, faults, timeline)))

    def close(self, seen: int, in_sagas: int, unattributed: int) -> CheckResult:
        """The result, once every instance has been judged."""
        result = self.result
        counts = self.counts
        for c in CHECKS:
            if c != "no_lost_request":
                counts[c]["passed"] += self.clean + (self.clean_pending if c != "termination" else 0)
        counts["termination"]["pending"] += self.clean_pending
        result.messages_seen = seen
        result.unattributed = unattributed
        result.duplicates_ignored = self.dups
        result.messages_in_sagas = in_sagas - self.dups
        found = self.found
        found.sort(key=lambda x: (x[0], x[1], x[2]))
        for _, at, _, v in found:
            v.at = at  # so that merged parts are ordered as one pass orders them (harness.checks.merge_results)
        result.violations = [v for *_, v in found]
        result.sagas_checked = self.checked
        result.counts = counts
        result.outcomes = self.outcomes
        result.operations = self.ops
        if self.last_terminal is not None:
            result.convergence_after_heal = round(max(0.0, self.last_terminal - self.healed_at), 6)
        return result


class _FaultTimeline:
    """The set of active faults over time, to name the faults active at each event of a violation."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.sets: list[tuple[str, ...]] = []

    def add(self, t: Any, active: tuple[str, ...]) -> None:
        self.times.append(float(t or 0.0))
        self.sets.append(active)

    def at(self, t: float) -> tuple[str, ...]:
        i = bisect_right(self.times, t) - 1
        return self.sets[i] if i >= 0 else ()


def _identity(row: Row) -> Any:
    eid = row[_EID]
    return ("e", str(eid)) if eid is not None else row[_ALT]


def _drop_duplicates(m: _Model, inst: list[Any]) -> tuple[list[Any], int]:
    """Remove wire duplicates: a later event on the same subject with the same identity as an earlier one."""
    counts: dict[int, int] = {}
    for rid in inst[0::2]:
        counts[rid] = counts.get(rid, 0) + 1
    out: list[Any] = []
    seen: set[tuple[int, Any]] = set()
    dropped = 0
    for i in range(0, len(inst), 2):
        rid, rec = inst[i], inst[i + 1]
        if counts[rid] > 1:
            ident = _identity(rec)
            if ident is not None:
                if (rid, ident) in seen:
                    dropped += 1
                    continue
                seen.add((rid, ident))
        out.append(rid)
        out.append(rec)
    return out, dropped


def _judge(m: _Model, key: str, inst: list[Any], a: _Analysis, deadline: float, deadline_at: float, ft: float,
           end_at: float, faults: dict[str, dict[str, Any]], timeline: _FaultTimeline,
           quiescent_at: float | None = None) -> list[SagaViolation]:
    """Every violation of one instance: the analysis' findings, rendered, plus what its deadline (or the system's
    quiescence) decides: a missing outcome or compensation is final once either has come; a late outcome is a
    violation only under the saga's latency objective."""
    evs: list[Row] = inst[1::2]
    subject = m.rid_subject

    def T(i: int) -> str:
        return f"{float(evs[i][_T] or 0.0):.3f}"

    def S(i: int) -> str:
        return subject[evs[i][_RID]]

    by_check: dict[str, tuple[list[str], list[int]]] = {}

    def note(check: str, text: str, marks: Iterable[int]) -> None:
        texts, mk = by_check.setdefault(check, ([], []))
        if text not in texts:
            texts.append(text)
        mk.extend(marks)

    for check, about, text in a.findings:
        note(check, text(T, S), about)
    final = quiescent_at is not None
    if a.owed and (end_at >= deadline_at or final):  # before either, a compensation may still arrive
        why = f"; the system was quiescent from t={quiescent_at:.3f}s, so it will not come" if final else ""
        for s, marks in a.owed:
            st = m.spec.steps[s]
            note("compensation_completeness", f"step '{st.name}' succeeded ({st.success}) but was never compensated "
                                              f"({st.compensation} not seen{why})", marks)
    spec = m.spec
    terminals = " or ".join((*spec.success, *spec.abort))
    expected_by = f"by t={deadline_at:.3f}s"
    if a.first_terminal < 0:
        last_subject, last_t = subject[evs[-1][_RID]], float(evs[-1][_T] or 0.0)
        if final:
            expected_by = "by the time the system is quiescent"
            note("termination", f"stuck: no terminal event ({', '.join((*spec.success, *spec.abort))}) and the "
                                f"system was quiescent from t={quiescent_at:.3f}s (nothing left to deliver, to "
                                f"acknowledge or to publish), so none will come; the last event was "
                                f"{last_subject} at t={last_t:.3f}s", ())
        elif end_at >= deadline_at:
            note("termination", f"no terminal event ({', '.join((*spec.success, *spec.abort))}) by "
                                f"t={deadline_at:.3f}s (deadline {deadline:g}s after t={deadline_at - deadline:.3f}s); "
                                f"the last event was {last_subject} at t={last_t:.3f}s", ())
    elif ft > deadline_at and spec.latency_objective is not None:
        base = deadline_at - deadline
        due = base + spec.latency_objective
        if ft > due:
            expected_by = f"within the latency objective {spec.latency_objective:g}s (by t={due:.3f}s)"
            note("termination", f"late: the terminal event came at t={ft:.3f}s, {ft - base:.3f}s after "
                                f"t={base:.3f}s; the latency objective is {spec.latency_objective:g}s",
                 (a.first_terminal,))
    out = []
    for check in CHECKS:
        if check in by_check:
            texts, marked = by_check[check]
            expected = EXPECTED.get(check) or f"exactly one terminal event ({terminals}) {expected_by}"
            out.append(_violation(m, key, check, expected, "; ".join(texts), inst, marked, faults, timeline))
    return out


def _lost_request(m: _Model, key: str, op: dict[str, Any], inst: list[Any] | None, due: float,
                  faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> SagaViolation:
    done = float(op.get("completed") or op.get("t") or 0.0)
    detail = (f"start request {op.get('op', '?')} ({op.get('request') or 'the workload'}) was accepted at "
              f"t={done:.3f}s ({op.get('detail') or 'ok'}) but {m.spec.start} for {m.spec.key} {key} never "
              f"appeared by t={due:.3f}s")
    return _violation(m, key, "no_lost_request", EXPECTED["no_lost_request"], detail, inst or [], [], faults,
                      timeline)


def _violation(m: _Model, key: str, check: str, expected: str, detail: str, inst: list[Any],
               marks: Iterable[int], faults: dict[str, dict[str, Any]], timeline: _FaultTimeline) -> SagaViolation:
    events: list[dict[str, Any]] = []
    active: list[list[str]] = []
    used: dict[str, dict[str, Any]] = {}
    steps = m.spec.steps
    services, snapshots = m.services, m.snapshots
    for rid, row in zip(inst[0::2], inst[1::2], strict=True):
        t = float(row[_T] or 0.0)
        snap = timeline.at(t)
        service = row[_PROD]
        if not service:
            step = next((s for role, s in m.role_sets[rid] if role >= STEP_OK), -1)
            service = steps[step].service if step >= 0 else None
        service = "?" if not service else services.setdefault(service, service) if service.__class__ is str else service
        events.append({"t": t, "service": service, "subject": m.rid_subject[rid],
                       "role": m.labels[rid], "seq": row[_SEQ], "event_id": row[_EID]})
        shared = snapshots.get(snap)
        if shared is None:
            shared = snapshots[snap] = list(snap)
        active.append(shared)  # never changed once made (findings, reports and JSON only read it)
        for fid in snap:
            used.setdefault(fid, faults.get(fid, {"id": fid}))
    return SagaViolation(saga=m.name, key=key, check=check, expected=expected, events=events, faults_active=active,
                         detail=detail, faults=used, marks=sorted(set(marks)))
