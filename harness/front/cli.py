"""The ``sagaproof`` command line: up, run, replay, contracts (check, diff, verify-pacts) and toxiproxy.

A thin front-end of the engine (:mod:`harness.session.engine`): it parses options, subscribes a rich progress display
to the event bus, prints the result the engine's :class:`~harness.events.RunFinished` carries, and maps
outcomes to exit codes (0 pass, 1 a check failed, 2 bad usage or input, 3 the environment could not be
started). User mistakes print one sentence, never a traceback. What a user must copy (the reproduce line,
URLs) is printed whole, on one line, whatever the terminal's width.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from sagaproof.harness.errors import EXIT_ENVIRONMENT, EXIT_USAGE, ConfigError, SagaproofError, translate

from sagaproof.faultkinds import FAULT_KINDS

if TYPE_CHECKING:
    from rich.console import Console
    from sagaproof.harness.events import Event

# What a command needs is imported when it runs: `sagaproof toxiproxy` (a long-lived server) and `--help` load
# neither rich nor the system-file and event modules (benchmarks/startup.py measures it).


class _LazyConsole:
    """A rich Console made on first use, with these options (importing rich is not free)."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    @property
    def real(self) -> Console:
        """The rich Console itself (for rich's own classes, which take nothing else)."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def __enter__(self) -> Console:
        return self.real.__enter__()

    def __exit__(self, *exc: Any) -> None:
        self.real.__exit__(*exc)


console: Console = _LazyConsole(stderr=False, highlight=False)  # type: ignore[assignment]
err_console: Console = _LazyConsole(stderr=True, highlight=False, soft_wrap=True)  # type: ignore[assignment]


class _Terminated(BaseException):
    """Raised in the main thread on SIGTERM so every `finally` runs and teardown happens."""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise _Terminated()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one sentence, exit 2
        err_console.print(f"sagaproof: error: {message}; run `{self.prog} --help` for the options.")
        raise SystemExit(EXIT_USAGE)


def _duration_arg(text: str) -> float:
    from sagaproof.harness.config import parse_duration

    value = parse_duration(text)
    if value is None or value <= 0:
        raise argparse.ArgumentTypeError(f"'{text}' is not a duration such as 90s, 30m or 2h")
    return value


def _faults_arg(text: str) -> tuple[str, ...]:
    if text.strip().lower() in ("", "none"):
        return ()
    return tuple(f.strip() for f in text.split(",") if f.strip())


def _phases_arg(text: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(p.strip() for p in text.split(",") if p.strip()))
    bad = [n for n in names if n not in ("targeted", "random")]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"unknown phase '{bad[0] if bad else text}' (the phases are: targeted, random)")
    return names


def _count_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number of at least 1")
    return value


def _port_arg(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a TCP port (0 to 65535; 0 picks a free one)")
    return value


def _seeds_arg(text: str) -> list[int]:
    from sagaproof.harness.session.shards import parse_seeds

    try:
        return parse_seeds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _os_reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def ensure_writable_dir(path: Path, what: str) -> None:
    """Create *path* if needed and check a file can be written in it; ConfigError (exit 2) if not."""
    probe = Path(path) / ".sagaproof-write-probe"
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{what} {path}: cannot write there ({_os_reason(exc)}); choose a directory you can "
                          f"write to.") from exc


def _intensity_arg(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1
    if not 0 <= v <= 1:
        raise argparse.ArgumentTypeError(f"'{text}' is not an intensity between 0 and 1")
    return v


def _add_run(sub: Any) -> None:
    """`sagaproof run` and its options."""
    run = sub.add_parser("run", help="the full job: contracts, workload with faults, checks, reports")
    run.add_argument("dir", nargs="?", default=".", help="directory with sagaproof.toml (default: .)")
    sg = run.add_mutually_exclusive_group()
    sg.add_argument("--seed", type=int, default=None, help="seed of the workload and the fault schedule")
    sg.add_argument("--seeds", type=_seeds_arg, default=None, metavar="LIST",
                    help="run many seeds, each in its own environment: 1-100, or 1,5,9 (see --jobs)")
    run.add_argument("--jobs", type=_count_arg, default=None, metavar="N",
                     help="with --seeds: how many seeds run at once on this machine (default 1)")
    g = run.add_mutually_exclusive_group()
    g.add_argument("--sagas", type=_count_arg, default=None, help="how many sagas to start (default: the system file's)")
    g.add_argument("--duration", type=_duration_arg, default=None, help="drive the workload for this long, e.g. 30m")
    run.add_argument("--faults", type=_faults_arg, default=None,
                     help=f"comma-separated fault menu, or 'none' ({', '.join(FAULT_KINDS)})")
    run.add_argument("--intensity", type=_intensity_arg, default=None, help="0..1, how much of the time faults are on")
    run.add_argument("--phases", type=_phases_arg, default=None,
                     help="the nemesis's phases: targeted, random, or targeted,random (default: [chaos] phases)")
    run.add_argument("--report-dir", type=Path, default=Path("sagaproof-report"), help="where reports and logs go")
    run.add_argument("--shrink", action="store_true", help="on failure, find a minimal failing fault schedule")
    run.add_argument("--shrink-runs", type=_count_arg, default=8, metavar="N", help="at most N re-runs when shrinking (default 8)")
    run.add_argument("--no-chaos", action="store_true", help="no fault proxies and no faults")
    run.add_argument("--schedule", type=Path, default=None, metavar="FILE",
                     help="replay this fault schedule (JSON, e.g. a shrunk minimal-schedule.json) instead of drawing one")
    run.add_argument("--env", action="append", default=[], metavar="KEY=VALUE", help="extra env for every service")
    run.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                     help="load a plugin's checks and fault kinds (repeatable; see docs/extending.md)")


def _add_replay(sub: Any) -> None:
    """`sagaproof replay` and its options."""
    rep = sub.add_parser("replay", help="re-run a recorded run exactly: same seed, faults as carried out, same env")
    rep.add_argument("report", type=Path, metavar="REPORT_DIR", help="the report directory of the run to replay")
    rep.add_argument("--report-dir", type=Path, default=None, metavar="NEW",
                     help="where the replay's reports go (default: REPORT_DIR-replay, -replay-2, ...)")
    rep.add_argument("--schedule", type=Path, default=None, metavar="FILE",
                     help="replay this fault schedule instead (e.g. the minimal-schedule.json of a shrink)")
    rep.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                     help="set a variable again (one whose value was masked in system.json), or change one")
    rep.add_argument("--plugin", action="append", default=[], metavar="MODULE_OR_PATH",
                     help="load another plugin too (the run's own plugins are loaded again by themselves)")


def _add_contracts(sub: Any) -> None:
    """`sagaproof contracts ...`: check, diff, verify-pacts, record-deployment, can-i-deploy."""
    con = sub.add_parser("contracts", help="event contracts: check, diff, verify-pacts, record-deployment, can-i-deploy")
    csub = con.add_subparsers(dest="contracts_command", required=True, parser_class=_Parser)
    chk = csub.add_parser("check", help="static producer/consumer compatibility (no services started)")
    chk.add_argument("dir", nargs="?", default=".", help="directory with sagaproof.toml, or of AsyncAPI files")
    chk.add_argument("--json", action="store_true", help="print JSON instead of a table")
    chk.add_argument("--http", action="store_true", help="also fuzz HTTP entry points with schemathesis (starts the system)")
    chk.add_argument("--report-dir", type=Path, default=Path("sagaproof-report"))
    dif = csub.add_parser("diff", help="breaking-change gate against a git ref or a directory")
    dif.add_argument("dir", nargs="?", default=".", help="directory with sagaproof.toml, or of AsyncAPI files")
    dif.add_argument("--base", required=True, help="git ref (e.g. origin/main) or a directory with the old contracts")
    dif.add_argument("--json", action="store_true", help="print JSON instead of a table")
    ver = csub.add_parser("verify-pacts", help="verify message pacts against the live providers")
    ver.add_argument("dir", nargs="?", default=".", help="directory with sagaproof.toml")
    ver.add_argument("--pacts", type=Path, default=None, help="pact directory (default: from the system file)")
    ver.add_argument("--report-dir", type=Path, default=Path("sagaproof-report"))
    rec = csub.add_parser("record-deployment", help="record which commit of its contracts a service runs in an "
                                                    "environment (deployments/ENV.toml)")
    rec.add_argument("services", nargs="+", metavar="SERVICE", help="the service(s) deployed")
    rec.add_argument("--env", required=True, help="the environment, e.g. prod (its file is deployments/ENV.toml)")
    rec.add_argument("--ref", default=None, help="the git ref deployed (default HEAD); recorded as its commit id")
    rec.add_argument("--undeploy", action="store_true", help="remove the service(s) from the environment")
    rec.add_argument("--clear-previous", action="store_true",
                     help="keep no previous version: the streams hold no message of it any more")
    rec.add_argument("--dir", default=".", help="directory with sagaproof.toml, or of AsyncAPI files (default: .)")
    rec.add_argument("--deployments", type=Path, default=None, metavar="DIR",
                     help="where the environment files are (default: deployments/ next to the system file)")
    cid = csub.add_parser("can-i-deploy", help="check candidates against what runs in an environment, both ways")
    cid.add_argument("services", nargs="+", metavar="SERVICE", help="the service(s) to deploy together")
    cid.add_argument("--to", required=True, metavar="ENV", help="the environment, as recorded by record-deployment")
    cid.add_argument("--ref", default=None, help="the git ref to deploy (default: the work tree)")
    cid.add_argument("--json", action="store_true", help="print JSON instead of a table")
    cid.add_argument("--peer-contracts", action="append", default=[], metavar="NAME=PATH_OR_GIT_URL@REF",
                     help="a running peer's contracts from another directory or repository (repeatable)")
    cid.add_argument("--dir", default=".", help="directory with sagaproof.toml, or of AsyncAPI files (default: .)")
    cid.add_argument("--deployments", type=Path, default=None, metavar="DIR",
                     help="where the environment files are (default: deployments/ next to the system file)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="sagaproof", description="Contract tests and chaos runs for choreographed services over NATS.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    up = sub.add_parser("up", help="bring the system up and hold until Ctrl-C")
    up.add_argument("dir", nargs="?", default=".", help="directory with sagaproof.toml (default: .)")
    up.add_argument("--report-dir", type=Path, default=Path("sagaproof-report"), help="where logs go")
    up.add_argument("--chaos-links", action="store_true", help="route each service through its own fault proxy")

    _add_run(sub)
    _add_replay(sub)
    _add_contracts(sub)

    mg = sub.add_parser("merge", help="merge report directories (runs, sharded runs, CI shards) into one report")
    mg.add_argument("inputs", nargs="+", type=Path, metavar="REPORT_DIR", help="report directories to merge")
    mg.add_argument("--report-dir", type=Path, required=True, help="where the merged report goes (a new directory)")

    tp = sub.add_parser("toxiproxy", help="serve the Toxiproxy-compatible fault proxy API")
    from sagaproof.chaos.toxiproxy_flags import add_arguments  # not the server: --help does not load it

    add_arguments(tp, port_type=_port_arg)  # --host --port --seed --proxy-metrics --runtime-metrics
    return p


# ---------------------------------------------------------------------------- progress display


class Progress:
    """A rich progress display driven by engine events (a thin consumer). Events it has no special line
    for are printed by their own :meth:`~harness.events.Event.summary` (a new kind needs no change here)."""

    def __init__(self, con: Console, total: int):
        from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn, TimeElapsedColumn
        from rich.progress import Progress as RichProgress
        from sagaproof.harness import events

        self.con = con
        self.events = events
        self.progress = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     console=con.real if isinstance(con, _LazyConsole) else con, transient=False)
        self.task = self.progress.add_task("starting", total=total or None)
        self.faults_active = 0
        self.messages = 0

    def _line(self, text: str) -> None:
        self.progress.console.print(text, markup=False, soft_wrap=True)

    def __call__(self, event: Event) -> None:
        p = self.progress
        ev = self.events
        if isinstance(event, ev.MessageRecorded):
            self.messages += 1
            return
        if isinstance(event, ev.RunStarted):
            p.console.print(f"[bold]sagaproof run[/] {event.system}  seed=[bold cyan]{event.seed}[/]  "
                            f"report={event.report_dir}", soft_wrap=True)
        elif isinstance(event, ev.NatsReady):
            self._line(f"  nats ready in {event.seconds:.2f}s")
        elif isinstance(event, ev.ServiceReady):
            self._line(f"  service {event.service} ready on :{event.port} ({event.seconds:.2f}s)")
        elif isinstance(event, ev.SagaStarted):
            p.advance(self.task)
            p.update(self.task, description=f"sagas started (faults active: {self.faults_active})")
        elif isinstance(event, ev.FaultInjected):
            self.faults_active += 1
            self._line(f"  {event.summary()}")
        elif isinstance(event, ev.FaultHealed):
            self.faults_active = max(0, self.faults_active - 1)
        elif isinstance(event, ev.Phase):
            p.update(self.task, description=f"{event.name} {event.detail}".strip())
            if event.name == "shrinking":
                self._line(f"  shrink: {event.detail}")
        elif isinstance(event, ev.ViolationFound):
            self._line(f"  violation {event.check}: {event.summary_text[:200]}")
        elif event.kind in ("finding", "check", "saga_checked", "contract_violation"):
            return  # summed up by the result table
        else:
            text = event.summary()
            if text:
                self._line(f"  {text}")

    def __enter__(self) -> Progress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


def _print_whole(text: str) -> None:
    """One line, never wrapped or cut, whatever the terminal (a command or URL someone must copy)."""
    console.print(text, markup=False, soft_wrap=True, overflow="ignore", crop=False)


def print_result(result: Any) -> None:
    """The verdict table, the first failure, the reproduce line and the report's path."""
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    table = Table(title=f"sagaproof: {result.verdict.upper()}  (seed {result.seed}, {result.duration_s:.1f}s, "
                        f"{result.messages_recorded} messages, {len(result.faults)} faults)")
    from sagaproof.contracts.render import add_columns

    rows = []
    for c in result.checks:
        status = getattr(c, "status", "")
        verdict = ("[dim]not applicable[/]" if status == "not applicable" else
                   "[bold red]NOT JUDGED[/]" if status == "not judged" else
                   "[green]pass[/]" if c.ok else "[bold red]FAIL[/]")
        rows.append((escape(c.name), verdict, escape(c.summary)))
    # a check's name and its verdict are never cut or broken; the summary wraps into what is left
    add_columns(table, console, [("check", [c.name for c in result.checks], True),
                                 ("verdict", [Text.from_markup(v).plain for _, v, _ in rows], True),
                                 ("summary", [c.summary for c in result.checks], False)])
    for row in rows:
        table.add_row(*row)
    console.print(table)
    coverage = getattr(result, "coverage", None)
    if coverage:
        _print_whole(f"{coverage['summary']} (consumer x input subject x window; see the report's coverage matrix)")
    failed = [c for c in result.checks if not c.ok]
    if failed:
        first = failed[0]
        console.print(f"[bold red]First failure:[/] {escape(first.name)}" + (" (not judged)" if first.status == "not judged" else ""))
        for line in first.details[:1]:
            console.print(line, markup=False, soft_wrap=True)
    if result.shrink:
        s = result.shrink
        faults = ", ".join(f["kind"] + "→" + f["target"] for f in s["minimal"]) or "none"
        if s.get("complete", True):
            _print_whole(f"Minimal fault schedule: {len(s['minimal'])} of {s['original']} faults ({faults})")
        else:
            _print_whole(f"Smallest failing schedule found in {s.get('reruns', len(s.get('runs') or []))} re-runs, "
                         f"not proven minimal: {len(s['minimal'])} of {s['original']} faults ({faults})")
        _print_whole(f"Replay it: {s['command']}")
    for note in result.notes:
        console.print(f"note: {note}", markup=False, soft_wrap=True)
    if failed:
        _print_whole(f"Reproduce: {result.command}")
    _print_whole(f"Report: {Path(result.history_path or '.').parent / 'report.html'}")


# ---------------------------------------------------------------------------- commands


def cmd_up(args: argparse.Namespace) -> int:
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.env.system import System
    from sagaproof.harness.events import EventBus, ServiceReady

    spec = load_system_file(args.dir)
    ensure_writable_dir(args.report_dir, "--report-dir")
    bus = EventBus()

    def on_ready(e: Event) -> None:
        if isinstance(e, ServiceReady):
            _print_whole(f"  {e.service} ready on :{e.port} ({e.seconds:.2f}s)")

    bus.subscribe(on_ready)
    _print_whole(f"sagaproof up {spec.path}")
    with System(spec, report_dir=args.report_dir, bus=bus, chaos_links=args.chaos_links) as system:
        # Ctrl-C is the way to stop, whenever it comes: while the URLs are still being printed too.
        try:
            # One block per service, each value whole on its line: a table would cut URLs in a narrow or piped
            # output, and these are what a person copies.
            _print_whole(f"system up in {system.started_seconds:.2f}s; Ctrl-C to stop")
            for row in system.describe():
                _print_whole(f"{row['name']}:")
                _print_whole(f"  url:      {row['url']}")
                _print_whole(f"  nats url: {row['nats_url']}")
                _print_whole(f"  port:     {row['port']}   pid: {row['pid']}")
                _print_whole(f"  log:      {row['log']}")
            _print_whole(f"NATS (direct): {system.nats_url}")
            if system.proxy_server is not None:
                _print_whole(f"Fault proxy API (Toxiproxy-compatible): {system.proxy_server.url}")
            sys.stdout.flush()
            while True:
                time.sleep(0.5)
        except KeyboardInterrupt:
            console.print("stopping…")
    return 0


def _env_args(items: list[str]) -> dict[str, str]:
    env = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--env {item!r} must look like KEY=VALUE, e.g. --env SHOP_BUG=no_refund.")
        env[key] = value
    return env


def _schedule_arg(path: Path | None, spec: Any) -> list[dict[str, Any]] | None:
    if path is None:
        return None
    import json

    from sagaproof.harness.session.nemesis import validate_schedule

    try:
        schedule = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--schedule {path}: cannot be read ({_os_reason(exc)}); give the path of a "
                          f"schedule file such as a shrinking run's minimal-schedule.json.") from exc
    except ValueError as exc:
        raise ConfigError(f"--schedule {path}: not valid JSON ({exc}); pass the minimal-schedule.json "
                          f"a shrinking run wrote.") from exc
    validate_schedule(schedule, spec, f"--schedule {path}")
    return list(schedule)


def _run(spec: Any, opts: Any, total: int) -> int:
    """Drive one run with the progress display; print the result the engine announces."""
    from sagaproof.harness.events import EventBus, RunFinished
    from sagaproof.harness.session.engine import run

    bus = EventBus()
    finished: list[Any] = []

    def on_finished(e: Event) -> None:
        if isinstance(e, RunFinished):
            finished.append(e.result)

    bus.subscribe(on_finished)
    with Progress(console, total) as progress:
        bus.subscribe(progress)
        code, _ = run(spec, opts, bus)
    print_result(finished[-1])
    return code


def cmd_run(args: argparse.Namespace) -> int:
    from sagaproof.harness.config import load_system_file
    from sagaproof.harness.plugins import check_fault_names, load_plugins

    args.plugin = load_plugins(args.plugin, base=Path.cwd(), where="--plugin")
    try:
        spec = load_system_file(args.dir)  # its [plugins] may add the fault kinds --faults names
    except ConfigError:
        check_fault_names(args.faults)  # a mistake on the command line is the first to report
        raise
    check_fault_names(args.faults)
    ensure_writable_dir(args.report_dir, "--report-dir")
    if args.jobs is not None and args.seeds is None:
        raise ConfigError("--jobs runs several seeds at once and needs --seeds, e.g. --seeds 1-20 --jobs 4.")
    if args.seeds is not None:
        from sagaproof.harness.front.shards_cmd import cmd_run_shards

        return cmd_run_shards(args, console, spec)
    from sagaproof.harness.session.engine import RunOptions

    opts = RunOptions(schedule=_schedule_arg(args.schedule, spec), seed=args.seed, sagas=args.sagas, duration=args.duration,
                      faults=args.faults, intensity=args.intensity, report_dir=args.report_dir, shrink=args.shrink,
                      shrink_runs=args.shrink_runs, chaos=not args.no_chaos and spec.chaos.enabled,
                      env=_env_args(args.env), system_arg=args.dir, phases=args.phases,
                      plugins=tuple(args.plugin))
    return _run(spec, opts, args.sagas or (0 if args.duration else spec.workload.sagas))


def cmd_replay(args: argparse.Namespace) -> int:
    from sagaproof.harness.plugins import load_plugins
    from sagaproof.harness.session.replay import replay_options

    plugins = load_plugins(args.plugin, base=Path.cwd(), where="--plugin")
    schedule = None
    if args.schedule is not None:
        spec, _ = replay_options(args.report, new_dir=args.report_dir, env=_env_args(args.env), plugins=plugins)
        schedule = _schedule_arg(args.schedule, spec)
    spec, opts = replay_options(args.report, new_dir=args.report_dir, env=_env_args(args.env), schedule=schedule,
                                plugins=plugins)
    if opts.report_dir is not None:
        ensure_writable_dir(opts.report_dir, "--report-dir")
    return _run(spec, opts, opts.sagas or (0 if opts.duration else spec.workload.sagas))


def cmd_contracts(args: argparse.Namespace) -> int:
    from sagaproof.harness.front.contracts_cmd import run_contracts_command

    return run_contracts_command(args, console)


def cmd_merge(args: argparse.Namespace) -> int:
    from sagaproof.harness.front.shards_cmd import print_summary
    from sagaproof.harness.report.merge import exit_code_of, merge_dirs

    ensure_writable_dir(args.report_dir, "--report-dir")
    entries, paths = merge_dirs(list(args.inputs), args.report_dir)
    print_summary(console, entries, None, None, None)
    console.print(f"Report: {paths['report.html']}")
    return exit_code_of(entries)


def cmd_toxiproxy(args: argparse.Namespace) -> int:
    from sagaproof.chaos.toxiproxy import run_standalone

    if args.host not in ("127.0.0.1", "::1", "localhost"):
        err_console.print(f"sagaproof: note: the fault proxy API listens on {args.host}, not only loopback.")
    from sagaproof.harness.errors import boundary

    with boundary("config"):  # the port is taken or the address is not ours: bad usage
        run_standalone(args.host, args.port, args.seed, proxy_metrics=args.proxy_metrics,
                       runtime_metrics=args.runtime_metrics)
    return 0


COMMANDS = {"up": cmd_up, "run": cmd_run, "replay": cmd_replay, "contracts": cmd_contracts,
            "toxiproxy": cmd_toxiproxy, "merge": cmd_merge}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `sagaproof` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        return COMMANDS[args.command](args)
    except SagaproofError as exc:
        err_console.print(f"sagaproof: {exc}", markup=False)
        return exc.exit_code
    except KeyboardInterrupt:
        err_console.print("sagaproof: interrupted; everything it started has been stopped.")
        return 130
    except _Terminated:
        err_console.print("sagaproof: terminated; everything it started has been stopped.")
        return 143
    except OSError as exc:
        err_console.print(f"sagaproof: the environment could not be started ({exc}).", markup=False)
        return EXIT_ENVIRONMENT
    except Exception as exc:
        err = translate(exc, "environment")  # a contracts or chaos error that no boundary caught
        if err is None:
            raise
        err_console.print(f"sagaproof: {err}", markup=False)
        return err.exit_code


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
