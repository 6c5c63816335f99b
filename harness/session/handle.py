"""What a pytest test gets: :class:`SessionHandle` (the ``sagaproof_system`` fixture: the running system and the
session's engine) and :class:`ChecksResult` (what its ``check_sagas`` returns); :func:`running` hands the same handle
to scripts and tests that drive a session themselves. Both are typed member by member: the public API
(``sagaproof.SessionHandle``, ``sagaproof.ChecksResult``) has no ``__getattr__`` and no ``Any`` to fall back on;
the environment is ``handle.system``, the saga checker's whole result ``result.sagas``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagaproof.harness.checks import Window
from sagaproof.harness.checks.checker import CheckResult, SagaViolation
from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.results import CheckOutcome
from sagaproof.harness.config import SystemSpec
from sagaproof.harness.env.wait import eventually
from sagaproof.harness.errors import SagaproofError
from sagaproof.harness.events import EventBus, ProcessChanged
from sagaproof.harness.session.engine import Session, StartResult

if TYPE_CHECKING:
    from sagaproof.harness.env.aio import LoopThread
    from sagaproof.harness.env.broker_view import BrokerView
    from sagaproof.harness.env.links import ChaosHandle
    from sagaproof.harness.env.system import Service, System

__all__ = ["ChecksResult", "SessionHandle", "running"]


class ChecksResult:
    """What ``check_sagas`` found: every check's outcome over the window, the saga checker's result, and
    the failures of all of them as one list of findings.

    ``ok`` is true only when every check held *and* at least one saga was judged. ``violations``,
    ``sagas_checked``, ``counts``, ``by_check(...)``... are the saga checker's (:class:`CheckResult`).
    ``str(result)`` (and the ``AssertionError`` of :meth:`assert_ok`) reads on its own: each failure, the
    seed and the line that reproduces it.
    """

    def __init__(self, outcomes: list[CheckOutcome], sagas: CheckResult, *, seed: int | None, repro: str,
                 window: Window, in_verdict: bool = True):
        self.outcomes = outcomes
        self.sagas = sagas
        self.seed = seed
        self.repro = repro
        self.window = window
        self.in_verdict = in_verdict  # counted in the pytest session's verdict (check_sagas(in_verdict=False): not)

    @property
    def ok(self) -> bool:
        return all(o.ok for o in self.outcomes)

    @property
    def findings(self) -> list[Finding]:
        return [f for o in self.outcomes for f in o.findings]

    @property
    def failed_checks(self) -> list[CheckOutcome]:
        return [o for o in self.outcomes if not o.ok]

    # the saga checker's result (``sagas``, a CheckResult), its parts typed one by one
    @property
    def violations(self) -> list[SagaViolation]:
        return self.sagas.violations

    @property
    def sagas_checked(self) -> int:
        return self.sagas.sagas_checked

    @property
    def counts(self) -> dict[str, dict[str, int]]:
        return self.sagas.counts

    def by_check(self, check: str) -> list[SagaViolation]:
        return self.sagas.by_check(check)

    @property
    def convergence(self) -> dict[str, float]:
        return self.sagas.convergence

    @property
    def convergence_after_heal(self) -> float | None:
        return self.sagas.convergence_after_heal

    def convergence_stats(self) -> dict[str, float | int | None]:
        return self.sagas.convergence_stats()

    @property
    def pending(self) -> list[tuple[str, str]]:
        return self.sagas.pending

    @property
    def late(self) -> list[tuple[str, str, float]]:
        return self.sagas.late

    @property
    def violated_sagas(self) -> list[tuple[str, str]]:
        return self.sagas.violated_sagas

    @property
    def quiescent_at(self) -> float | None:
        return self.sagas.quiescent_at

    @property
    def messages_seen(self) -> int:
        return self.sagas.messages_seen

    @property
    def messages_in_sagas(self) -> int:
        return self.sagas.messages_in_sagas

    @property
    def duplicates_ignored(self) -> int:
        return self.sagas.duplicates_ignored

    @property
    def unattributed(self) -> int:
        return self.sagas.unattributed

    @property
    def operations(self) -> dict[str, int]:
        return self.sagas.operations

    def summary(self, check: str) -> str:
        """The saga checker's one line for one of its checks (e.g. '198 of 200 sagas passed; 2 failed')."""
        return self.sagas.summary(check)

    def message(self) -> str:
        if self.ok:
            return f"every check held ({self.sagas.sagas_checked} sagas judged)"
        lines = [f"{len(self.failed_checks)} check(s) failed: {', '.join(o.name for o in self.failed_checks)}"]
        for o in self.failed_checks:
            lines.append(f"- {o.name}: {o.summary}" if o.status != "not judged" or "not judged" in o.summary
                         else f"- {o.name} (not judged): {o.summary}")
            for f in o.findings[:5]:
                lines.extend("    " + line for line in f.text().splitlines())
            if len(o.findings) > 5:
                lines.append(f"    ... and {len(o.findings) - 5} more")
        lines.append(f"seed: {self.seed}")
        lines.append(f"reproduce: {self.repro}")
        return "\n".join(lines)

    __str__ = message

    def __repr__(self) -> str:
        first = self.failed_checks[0] if self.failed_checks else None
        return (f"<ChecksResult ok={self.ok} sagas_checked={self.sagas.sagas_checked}"
                + (f" first failure: {first.name}: {first.summary}" if first else "") + ">")

    def assert_ok(self) -> None:
        """Raise AssertionError with :meth:`message` unless every check held."""
        __tracebackhide__ = True
        if not self.ok:
            raise AssertionError(self.message())


class SessionHandle:
    """What a pytest test gets (``sagaproof_system``): the running system and the session's engine.

    ``services[name]`` (``.http``, ``.kill()``, ``.pause()``, ``.resume()``, ``.restart()``, ``.stop()``),
    ``nats_url``, ``chaos`` (fault context managers), ``seed``, ``report_dir``; and the engine:
    :meth:`start_sagas`, :meth:`mark`, :meth:`history`, :meth:`check_sagas`, :meth:`eventually`.
    Process faults a test makes through it are undone when the test ends, pass or fail.
    """

    def __init__(self, session: Session, *, repro: Callable[[], str] | None = None):
        self.session = session
        self._repro = repro or (lambda: session.command)
        self.test_started: float | None = None
        self.nodeid: str | None = None
        self.results: list[ChecksResult] = []  # every check_sagas result, for the session's report
        self.log_offsets: dict[Path, int] = {}  # each log's size as the current test began

    # environment
    @property
    def system(self) -> System:
        system: System = self.session.system
        return system

    @property
    def services(self) -> dict[str, Service]:
        return self.system.services

    @property
    def chaos(self) -> ChaosHandle:
        return self.system.chaos

    @property
    def nats_url(self) -> str:
        return str(self.session.system.nats_url)

    @property
    def nats_urls(self) -> list[str]:
        return list(self.session.system.nats_urls)

    @property
    def spec(self) -> SystemSpec:
        return self.session.spec

    @property
    def seed(self) -> int:
        return self.session.seed

    @property
    def report_dir(self) -> Path:
        return self.session.report_dir

    @property
    def broker(self) -> BrokerView:
        """What each service's link and the NATS server show (``system.broker``)."""
        return self.system.broker

    @property
    def loop(self) -> LoopThread:
        """The environment's event loop thread (``system.loop``), to run a coroutine against the system."""
        loop = self.system.loop
        assert loop is not None, "the system is not up"
        return loop

    def replicas(self, service: str) -> list[Service]:
        """The processes of one service (itself, or its replicas)."""
        return self.system.replicas(service)

    def restart_nats(self, index: int = 0) -> None:
        """Kill a NATS node and start it again with its JetStream data (a recorded fault)."""
        self.chaos.restart_nats(index)

    # engine
    def mark(self) -> float:
        """The current history time (seconds), to check only what starts after this point."""
        return self.session.now

    def history(self, since: float = 0.0, kinds: Iterable[str] | None = None) -> list[dict[str, Any]]:
        """The recorded history from ``since`` on, in time order: one dict per record (``kind``: ``message``,
        ``fault_start``, ``fault_end``, ``fault_failed``, ``operation``, ``process``, ``phase``, ``finding``...;
        see docs/history.md)."""
        assert self.session.history is not None
        self.session.system.broker.flush()  # what the links observed up to now
        recs = list(self.session.history.records(kinds=kinds, since=since))
        recs.sort(key=lambda r: (r.get("t", 0.0), r.get("seq", 0)))
        return recs

    def start_sagas(self, count: int | None = None, *, seed: int | None = None, wait: float | None = None) -> StartResult:
        """Start ``count`` sagas the way [workload] says; returns once their start events are recorded, with
        each request's outcome (``.outcomes``) and the accepted sagas' keys (``.keys``)."""
        return self.session.start_sagas(count, seed=seed, wait=wait)

    def check_sagas(self, since: float | None = None, *, keys: Iterable[object] | None = None,
                    wait: float | None = None, invariants: bool = True, in_verdict: bool = True) -> ChecksResult:
        """Every check, over the sagas that started at or after ``since`` (default: the start of this test),
        or exactly the sagas with these ``keys``: the saga checks, live contract conformance, recorder
        completeness, the faults of the window, the invariants (unless ``invariants=False``), and every
        registered check.

        First waits (at most ``wait`` seconds, default the longest saga deadline) until nothing is owed:
        no saga of the window misses its outcome or a compensation. A window with no saga fails.

        Every result counts in the pytest session's verdict (``report.json``, the exit code), asserted or not;
        a test that provokes a failure on purpose, to see it reported, passes ``in_verdict=False``.
        """
        s = self.session
        if since is None:
            since = self.test_started if keys is None and self.test_started is not None else 0.0
        window = Window(since=since if keys is None else None,
                        keys=frozenset(k if isinstance(k, tuple) else str(k) for k in keys) if keys is not None else None)
        waited = s._max_deadline() if wait is None else wait
        settled = s.converge(since, quiet=0.3, window=window, limit=waited)
        s.drain()
        reads_quiescent = True
        if getattr(s, "reads", None) is not None:  # the window's sagas read once, as a run's are at its end
            from sagaproof.harness.session.reads import wait_quiescent, window_keys

            reads_quiescent = wait_quiescent(s, min(waited, 10.0))
            s.reads.final_reads(window_keys(s, window))
        if invariants:
            s.evaluate_invariants()
        assert s.history is not None
        # settled: nothing is owed even as if every deadline had passed, so judge as of then; otherwise judge
        # now, and a saga still without its outcome is reported below rather than passed as "pending"
        end_at = s.history.max_t + s._max_deadline() if settled else s.now
        outcomes = s.check(window, healed_at=since, end_at=end_at, reads_quiescent=reads_quiescent,
                           planned_faults=[], window_messages=self._messages_since(since))
        saga = s.last_saga_result or CheckResult()
        if saga.pending:
            keys = ", ".join(f"{name}/{key}" for name, key in saga.pending[:10])
            text = (f"{len(saga.pending)} saga(s) had no outcome yet when check_sagas stopped waiting after "
                    f"{waited:g}s: {keys}; pass a longer wait= or find out why they are stuck")
            outcomes.append(CheckOutcome("sagas settled", False, text, [text], [Finding("sagas settled", text, text)]))
        result = ChecksResult(outcomes, saga, seed=s.seed, repro=self._repro(), window=window, in_verdict=in_verdict)
        self.results.append(result)
        return result

    def read_status(self, key: object, saga: str | None = None) -> dict[str, Any]:
        """Read saga instance ``key``'s status the way ``[sagas.NAME.status]`` declares (the run's own read,
        recorded in the history as a ``read`` record): returns that record, with ``outcome`` (ok, fail,
        unknown), ``value``, ``status`` (pending, success, abort or None) and ``found``."""
        from sagaproof.harness.session.reads import read_once

        return read_once(self.session, key, saga)

    def _messages_since(self, since: float) -> int:
        assert self.session.history is not None
        return sum(1 for _ in self.session.history.records(kinds=("message",), since=since))

    def eventually(self, fn: Callable[[], object], timeout: float = 10.0, interval: float = 0.1) -> None:
        """Call fn() until it stops raising AssertionError (or returning False/a reason); else raise it."""
        __tracebackhide__ = True
        ok, why = eventually(fn, timeout, interval)
        if not ok:
            raise AssertionError(f"not true within {timeout:g}s: {why}")

    # test windows (the pytest plugin calls these)
    def begin_test(self, nodeid: str) -> None:
        from sagaproof.harness.events import TestStarted

        self.nodeid = nodeid
        self.test_started = self.session.now
        self.log_offsets = {p: p.stat().st_size for p in self.session.system.log_dir.glob("*.log")}
        self.session.emit(TestStarted(nodeid))

    def end_test(self, outcome: str) -> list[str]:
        """Undo what the test left behind: resume paused processes, start stopped or killed ones, heal the
        links. Returns what was undone (also in the history)."""
        from sagaproof.harness.events import TestFinished

        undone: list[str] = []
        system = self.session.system
        for name, svc in system.services.items():
            try:
                if getattr(svc.process, "paused", False):
                    svc.resume()
                    undone.append(f"resumed {name}")
                if not svc.running:
                    if getattr(svc.spec, "attached", False):
                        svc.restart()  # an attached service is started again by its restart command
                    else:
                        svc.start()
                    undone.append(f"started {name} again")
            except SagaproofError as exc:
                undone.append(f"could not restore {name}: {exc}")
        if system.nats is not None:
            for node in system.nats.nodes:
                if node.process.paused:
                    node.process.resume()
                    undone.append(f"resumed nats-{node.index}")
                if not node.process.running:
                    node.process.start()
                    system.nats.wait_healthy(node, 30)
                    self.session.emit(ProcessChanged(f"nats-{node.index}", "start", node.process.pid))
                    undone.append(f"started nats-{node.index} again")
        try:
            system.chaos.heal()
        except SagaproofError as exc:
            undone.append(f"could not heal the links: {exc}")
        self.session.emit(TestFinished(self.nodeid or "?", outcome, undone))
        self.nodeid = None
        return undone

    def write_test_artifacts(self, dest: Path) -> dict[str, Path]:
        """A failed test's slice of the history (``events.jsonl``) and of every log, into ``dest``."""
        dest.mkdir(parents=True, exist_ok=True)
        assert self.session.history is not None
        since = self.test_started or 0.0
        self.session.history.write_slice(dest / "events.jsonl", since=since)
        out = {"events.jsonl": dest / "events.jsonl"}
        for log in sorted(self.session.system.log_dir.glob("*.log")):
            start = getattr(self, "log_offsets", {}).get(log, 0)
            with open(log, "rb") as src, open(dest / log.name, "wb") as dst:
                src.seek(start)
                shutil.copyfileobj(src, dst)
            out[log.name] = dest / log.name
        return out

    def test_notes(self) -> list[str]:
        """The notable events of the current test's window, one line each (for a failing test's section)."""
        since = self.test_started or 0.0
        return [f"t={e['t']:.3f}s {e['summary']}" for e in self.session.notable_events(since=since, limit=50)]


@contextmanager
def running(spec: SystemSpec, *, report_dir: str | Path, chaos_links: bool = False, seed: int = 0,
            env: dict[str, str] | None = None, bus: EventBus | None = None) -> Iterator[SessionHandle]:
    """The system up and its history recorded, handed out as the pytest handle (for scripts and tests that
    drive it themselves): ``with running(spec, report_dir=d) as system: system.start_sagas(10) ...``."""
    session = Session(spec, report_dir=report_dir, bus=bus, seed=seed, env=env, chaos_links=chaos_links)
    session.open()
    try:
        yield SessionHandle(session)
    finally:
        session.close()
