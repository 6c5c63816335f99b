"""The whole job of ``sagaproof run`` (:meth:`harness.session.engine.Session.run`): contracts, environment,
workload under the nemesis, heal, converge, invariants, checks, result, in three parts: :func:`_drive` (the
environment up, the workload and the faults, until the system converged), :func:`_judge` (every check over the
complete history, the environment down) and :func:`_notes` (what the run tells its reader)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sagaproof.harness.checks import Window
from sagaproof.harness.checks.results import CheckOutcome, RunResult
from sagaproof.harness.errors import ConfigError
from sagaproof.harness.events import Phase, RunStarted

if TYPE_CHECKING:
    from sagaproof.harness.session.engine import Session
    from sagaproof.harness.session.options import RunOptions
    from sagaproof.harness.session.support import StartResult


def run_job(s: Session, opts: RunOptions) -> tuple[int, RunResult]:
    """One run, start to end, on session `s`; returns (exit code, RunResult). Emits :class:`RunFinished` with the
    result. Environment errors propagate (exit 3); everything started is stopped whatever happens."""
    from sagaproof.harness.session.nemesis import make_schedule

    spec = s.spec
    if spec.workload.via == "http" and spec.workload.service is None:
        raise ConfigError(f"{spec.path}: [workload] is missing; add a [workload] table that says how a saga is started.")
    started_iso = datetime.now(UTC).isoformat(timespec="seconds")
    t_start = time.monotonic()
    s._ensure_history()
    s.emit(RunStarted(str(spec.path), s.seed, str(s.report_dir), s.command))
    notes: list[str] = []
    count = opts.sagas if opts.sagas is not None else spec.workload.sagas
    window_s = opts.duration if opts.duration is not None else count / spec.workload.rate
    if opts.chaos:
        make_schedule(spec, opts, s.seed, window_s)  # a bad menu or schedule is exit 2 before anything starts
    s.wants_static_check = True
    s.open()
    try:
        wres, healed_at, end_at, services = _drive(s, opts, count, window_s, notes)
    except BaseException:
        s.close()
        raise
    # the environment goes down before judging: the history is complete
    s._stop_environment()
    outcomes = _judge(s, opts, healed_at, end_at, notes)
    coverage = _notes(s, wres, notes)
    result = s._result(opts, outcomes, started_iso, time.monotonic() - t_start, services, notes, wres)
    result.coverage = coverage
    if opts.shrink and result.verdict == "fail":
        from sagaproof.harness.session.shrink import shrink

        result.shrink = shrink(spec, opts, result, s.bus)
    s.finish(result)
    s.close()
    return result.exit_code, result


def _drive(s: Session, opts: RunOptions, count: int, window_s: float,
           notes: list[str]) -> tuple[StartResult, float, float, list[dict[str, Any]]]:
    """The workload under the faults, the heal, the wait for convergence, the invariants and the last reads;
    returns (the workload's starts, when the faults healed, when the system converged, the services)."""
    from sagaproof.harness.session.nemesis import make_schedule, start_nemesis

    spec = s.spec
    s.emit(Phase("workload_start", f"{count if opts.duration is None else 'for ' + format(window_s, 'g') + 's'} sagas"))
    nemesis = None
    phases = opts.phases if opts.phases is not None else spec.chaos.phases
    locks: dict[str, threading.Lock] = {}  # process faults on one service take turns across the phases
    if opts.chaos and "targeted" in phases:
        s._start_targeted(opts, locks)
    if opts.chaos and "random" in phases:
        nemesis = start_nemesis(s.system, make_schedule(spec, s._usable(opts), s.seed, window_s),
                                lambda: s.now, s.bus, locks=locks)
        s.planned_faults = nemesis.planned
    notes.extend(s.system.notes)  # e.g. fault kinds attach mode cannot inject
    t_phase = time.monotonic()
    try:
        wres = s.start_sagas(opts.sagas, seed=s.seed, duration=opts.duration, wait=0, keep_outcomes=False)
    finally:
        s.timings["workload"] = round(time.monotonic() - t_phase, 3)
        t_phase = time.monotonic()
        if s.targeted is not None:
            s.targeted.finish()
        if nemesis is not None:
            nemesis.finish()
        s.timings["chaos"] = round(time.monotonic() - t_phase, 3)  # faults outlasting the workload
    s.emit(Phase("workload_end"))
    t_phase = time.monotonic()
    healed_at = s.now
    s.emit(Phase("healed"))
    s.emit(Phase("converging", f"{s.tracker.pending} sagas still open"))
    s.convergence = convergence = s.wait_for_end(healed_at, opts.quiet)
    if getattr(s, "reads", None) is not None:  # every saga read once, the system quiescent
        from sagaproof.harness.session.reads import final_keys

        s.reads.final_reads(final_keys(s))
    # invariants (eventually), while the services still run; once quiescent their answer cannot change
    settled = (lambda: s.system.broker.quiescence(opts.quiet)[0]) if convergence.how != "timeout" else None
    s.evaluate_invariants(settled)
    s.drain()
    s.system.broker.record_snapshot()
    s.timings["convergence"] = round(time.monotonic() - t_phase, 3)
    end_at = s.now
    s.emit(Phase("converged"))
    return wres, healed_at, end_at, s.system.describe()


def _judge(s: Session, opts: RunOptions, healed_at: float, end_at: float, notes: list[str]) -> list[CheckOutcome]:
    """Every check over the complete history (the environment is down), the static contract check first."""
    convergence = s.convergence
    for svc in s.system.services.values():
        if getattr(svc.process, "ignored_sigterm", False):  # a finding about the service
            notes.append(f"service '{svc.name}' ignored SIGTERM for {svc.spec.stop_timeout:g}s at teardown "
                         f"and was killed; make it exit on SIGTERM.")
    if convergence.how == "timeout":
        notes.append(f"the system was still not quiescent {convergence.waited:g}s after the heal "
                     f"({convergence.reason}); sagas were judged against their deadlines and unanswered deliveries "
                     f"counted as in flight. Raise [quiescence] timeout if the system needs longer to drain.")
    assert s.history is not None
    s.history.sort()
    s.emit(Phase("checking"))
    t_phase = time.monotonic()
    outcomes = s.check(Window(), healed_at=healed_at, end_at=end_at,
                       quiescent_at=convergence.quiescent_at if convergence.how == "quiescent" else None,
                       chaos=s.chaos_phase(opts), reads_quiescent=convergence.how != "timeout",
                       broker={"receives_from": s.contract_set, "final": convergence.how != "timeout",
                               "streams": {**s.recorder.stream_subjects,
                                           **getattr(s.recorder, "published_streams", {})},
                               "services": list(s.system.services), "groups": s.spec.groups(),
                               "observing": list(s.system.broker.observers)})
    s.timings["checks"] = round(time.monotonic() - t_phase, 3)
    contract_outcome = s.static_contract_outcome()
    if contract_outcome is not None:
        outcomes.insert(0, contract_outcome)
    return outcomes


def _notes(s: Session, wres: StartResult, notes: list[str]) -> dict[str, Any] | None:
    """What the run tells its reader about itself (late streams, starts that never got in, the targeted phase's
    coverage); returns the coverage."""
    late = getattr(s.recorder, "late_streams", {})
    if late:
        notes.append(f"stream(s) {', '.join(sorted(late))} were created by the services after the recording began: "
                     f"their messages were recorded as published, without stream sequences, so the broker checks "
                     f"judge only the work queues among them; declare them in [[nats.streams]] to have them read "
                     f"from the start")
    if wres.failed:
        notes.append(f"{wres.failed} of {wres.requested} saga starts never got in (entry point down too long); "
                     f"first error: {wres.errors[0] if wres.errors else '?'}")
    unknown = wres.unknown_count
    if unknown:
        notes.append(f"{unknown} saga start(s) got no answer (outcome unknown: they may or may not have started)")
    coverage = s.coverage()
    # Without an observed link (attach mode) the targeted phase has nothing to aim at: no note of "0 of 0"
    if coverage is not None and (coverage.get("total") or s.system.broker.observers):
        notes.insert(0, f"{coverage['summary']} (consumer x input subject x window; a window not exercised is "
                        f"not a pass)")
    return coverage
