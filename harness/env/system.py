"""The environment of a run: NATS, per-service fault proxies and the service processes, up and down as one.

``System(spec, report_dir=...)`` is a context manager. Entering it starts (in this order) the reaper
watchdog, NATS (embedded node or cluster, or the configured URL), the JetStream streams, the fault proxy
of every service (when chaos links are on), and every service in parallel, each waiting for its
readiness probe. Leaving it stops everything in escalating steps, whatever the way out. It gives
invariants and the session ``system.services[name]`` (stop, kill, pause, resume, restart, an HTTP client),
``system.nats_url`` and ``system.chaos``; every change to a process is a
:class:`~harness.events.ProcessChanged` event on its bus.

The environment knows nothing of runs: recording, workload, checks and reports are the session's
(:mod:`harness.session.engine`), which is what the CLI's ``run`` and the pytest plugin drive.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sagaproof.harness.config import ServiceSpec, SystemSpec, expand
from sagaproof.harness.env import ports as port_choice
from sagaproof.harness.env.aio import LoopThread
from sagaproof.harness.env.broker_view import BrokerView, service_users
from sagaproof.harness.env.http import ServiceHTTP
from sagaproof.harness.env.nats_server import NatsCluster, log_since
from sagaproof.harness.env.ports import Ports, port_taken
from sagaproof.harness.env.process import ManagedProcess, script_of, tail
from sagaproof.harness.env.reaper import Reaper
from sagaproof.harness.errors import (
    ConfigError,
    EnvironmentStartError,
    FaultError,
    SagaproofError,
    ServiceCrashed,
)
from sagaproof.harness.events import (
    EventBus,
    NatsReady,
    PortRetried,
    ProcessChanged,
    ServiceReady,
    ServiceStarting,
    SystemUp,
    hide_password,
)

from sagaproof.faultkinds import watch_process_groups

# Variables that describe the machine or the shell, not the system under test (where programs are, who and where the user is, the terminal, the locale): what
# a service inherits from the shell in a replay besides the recorded variables, so it finds the same programs.
MACHINE_VARS = re.compile(r"^(PATH|HOME|USER|LOGNAME|SHELL|PWD|OLDPWD|SHLVL|TERM|TERM_.*|COLORTERM|LS_COLORS|"
                          r"DISPLAY|WAYLAND_.*|SSH_.*|XDG_.*|TMPDIR|TMP|TEMP|HOSTNAME|HOSTTYPE|LANG|LANGUAGE|LC_.*|"
                          r"_|COLUMNS|LINES|MAIL|PS1|PS2|EDITOR|VISUAL|PAGER|LESS.*|VIRTUAL_ENV|VIRTUAL_ENV_PROMPT|"
                          r"PYTEST_.*|PYTHONUNBUFFERED|DBUS_.*|MOTD_SHOWN|OSTYPE|MACHTYPE|CONDA_.*)$")


def inherited(environ: Any, replayed: dict[str, str] | None) -> dict[str, str]:
    """What a service with ``inherit_env`` starts from: the whole environment, or in a replay (``replayed``
    given) the variables the original run's services inherited plus only the machine's own (MACHINE_VARS), so
    a variable set in the replaying shell but absent from the original run never reaches the services."""
    if replayed is None:
        return dict(environ)
    env = {k: v for k, v in environ.items() if MACHINE_VARS.match(k)}
    env.update(replayed)
    return env


class Service:
    """A running service of the system under test."""

    def __init__(self, system: System, spec: ServiceSpec, port: int, data_dir: Path, log_path: Path,
                 nats_url: str, process: ManagedProcess):
        self.system = system
        self.spec = spec
        self.name = spec.name
        self.port = port
        self.data_dir = data_dir
        self.log_path = log_path
        self.nats_url = nats_url
        self.process = process
        self.http = ServiceHTTP("127.0.0.1", port)
        self.ready_seconds: float | None = None
        # (argv, env) of the service's process on a given port: a start that finds its port taken moves it
        self.command_for: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def _emit(self, how: str, exit_code: int | None = None) -> None:
        self.system.bus.emit(ProcessChanged(self.name, how, self.process.pid, exit_code))

    def _must_run(self, what: str) -> None:
        if not self.process.running:
            raise FaultError(f"cannot {what} service '{self.name}': it is not running (it exited with code "
                             f"{self.process.returncode}); see {self.log_path}.")

    def start(self, wait: bool = True) -> None:
        """Start the service (if it is not running) and wait for its readiness probe."""
        if not self.process.running:
            self.process.start()
            self._emit("start")
        if wait:
            self.wait_ready()

    def wait_ready(self) -> float:
        """Block until the readiness probe passes; raise ServiceCrashed with the log tail if it does not."""
        t0 = time.monotonic()
        _probe(self)
        self.ready_seconds = time.monotonic() - t0
        return self.ready_seconds

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM, wait, SIGKILL. Returns the exit code."""
        code = self.process.stop(timeout)
        self._emit("stop", code)
        return code

    def kill(self) -> None:
        """SIGKILL the service's process group (a crash); FaultError if it is not running."""
        self._must_run("kill")
        self.process.kill()
        self._emit("kill", self.process.returncode)

    def pause(self) -> None:
        """SIGSTOP the service: it keeps its connections but stops reading them; FaultError if not running."""
        self._must_run("pause")
        self.process.pause()
        self._emit("pause")

    def resume(self) -> None:
        """SIGCONT a paused service."""
        self.process.resume()
        self._emit("resume")

    @property
    def paused(self) -> bool:
        return self.process.paused

    def restart(self, *, kill: bool = False, wait: bool = True) -> None:
        """Stop (or kill) and start again with the same port, data directory and environment."""
        if kill:
            self.process.kill()
        else:
            self.process.stop()
        code = self.process.returncode
        self.process.start()
        self.system.bus.emit(ProcessChanged(self.name, "restart", self.process.pid, code))
        if wait:
            self.wait_ready()

    def log_tail(self, lines: int = 20) -> list[str]:
        return self.process.log_tail(lines)

    def __repr__(self) -> str:
        return f"<Service {self.name} port={self.port} pid={self.pid} running={self.running}>"


def _crash_message(svc: Service, what: str) -> ServiceCrashed:
    lines = tail(svc.log_path, 15)
    shown = "\n    ".join(lines) if lines else "(the log is empty)"
    return ServiceCrashed(
        f"service '{svc.name}' {what}; fix the service or its [services.{svc.spec.service}] command/ready settings. "
        f"Last lines of {svc.log_path}:\n    {shown}",
        service=svc.name, log_path=str(svc.log_path), tail=lines)


def _probe(svc: Service) -> None:
    ready = svc.spec.ready
    deadline = time.monotonic() + ready.timeout
    log_offset = svc.process.log_offset  # only what this start wrote counts
    pattern = re.compile(ready.target) if ready.kind == "log" else None
    while True:
        if not svc.process.running:
            raise _crash_message(svc, f"exited with code {svc.process.returncode} during start-up")
        if ready.kind == "none":
            return
        if ready.kind == "http":
            try:
                with urllib.request.urlopen(f"{svc.url}{ready.target}", timeout=1.0) as resp:
                    if 200 <= resp.status < 300:
                        return
            except (urllib.error.URLError, OSError, ValueError):
                pass
        elif ready.kind == "tcp":
            try:
                with socket.create_connection(("127.0.0.1", svc.port), timeout=0.5):
                    return
            except OSError:
                pass
        elif pattern is not None:
            try:
                with open(svc.log_path, "rb") as f:
                    f.seek(log_offset)
                    chunk = f.read()
                text = chunk.decode("utf-8", "replace")
                if pattern.search(text):
                    return
                # keep a partial last line for the next look
                cut = text.rfind("\n")
                if cut >= 0:
                    log_offset += len(text[: cut + 1].encode())
            except OSError:
                pass
        if time.monotonic() >= deadline:
            what = {"http": f"GET {ready.target} answering 2xx", "tcp": f"a TCP connect to port {svc.port}",
                    "log": f"a log line matching {ready.target!r}"}[ready.kind]
            svc.process.kill()
            raise _crash_message(svc, f"did not become ready within {ready.timeout:g}s (waited for {what})")
        time.sleep(0.02)


class System:
    """NATS + proxies + services for one run. Use as a context manager; ``close()`` is idempotent."""

    def __init__(self, spec: SystemSpec, *, report_dir: str | Path | None = None, env: dict[str, str] | None = None,
                 bus: EventBus | None = None, chaos_links: bool = False, seed: int | None = None,
                 start_timeout: float | None = None):
        self.spec = spec
        self.report_dir = Path(report_dir) if report_dir else Path(tempfile.mkdtemp(prefix="sagaproof-report-"))
        self.log_dir = self.report_dir / "logs"
        self.extra_env = dict(env or {})
        self.replayed_env: dict[str, str] = {}  # inherited variables a replay sets again (below the file's env)
        self.replaying = False  # a replay: services inherit replayed_env and the machine's variables, nothing else
        self.manifest_extra: dict[str, Any] = {}  # more for system.json (the session's: inherited env...)
        self.bus = bus or EventBus()
        self.chaos_links = chaos_links
        self.seed = seed
        self.start_timeout = start_timeout
        self.services: dict[str, Service] = {}
        self.nats: NatsCluster | None = None
        self.loop: LoopThread | None = None
        # Every port the run's processes listen on (services, NATS, the fault proxy, links): outside the
        # ephemeral range and locked against every other sagaproof process on the host until close()
        self.ports = Ports()
        self.proxy_server: Any = None  # chaos.toxiproxy server when embedded
        self.proxies: Any = None  # chaos.client.FaultProxyClient when chaos links are on
        self.proxy_names: dict[str, str] = {}
        self.recorder: Any = None
        self.notes: list[str] = []  # what the run should tell its reader about the environment (attach mode)
        self.run_dir: Path | None = None
        self.reaper = Reaper()
        self._state = "new"
        self._lock = threading.Lock()
        self.started_seconds: float | None = None
        from sagaproof.harness.env.links import ChaosHandle

        self.chaos = ChaosHandle(self)
        self.broker = BrokerView(self)  # what each service's link and the server show

    # ------------------------------------------------------------------ properties
    @property
    def nats_url(self) -> str:
        """The direct URL of NATS (with credentials), never through a fault proxy."""
        if self.nats is not None:
            return self.nats.url
        return _with_credentials(self.spec.nats.url or "", self.spec.nats.user, self.spec.nats.password)

    @property
    def nats_urls(self) -> list[str]:
        if self.nats is not None:
            return self.nats.urls
        from sagaproof.harness.env.attach import split_urls

        # nats.url may list a cluster's servers, comma-separated
        return [_with_credentials(u, self.spec.nats.user, self.spec.nats.password)
                for u in split_urls(self.spec.nats.url or "")]

    @property
    def recorder_core(self) -> tuple[list[str], list[str]] | None:
        """Embedded NATS: the URLs of the user for the recorder's core subscription and the subjects the server
        never sends it (JetStream, inboxes, the declared streams' subjects); None with an existing NATS (the
        recorder leaves those out itself)."""
        if self.nats is None:
            return None
        return self.nats.recorder_core_urls, list(self.nats.recorder_denied)

    @property
    def nats_options(self) -> dict[str, Any]:
        """nats-py connect() arguments for [nats] creds, nkey and tls (attach mode); empty for embedded NATS."""
        from sagaproof.harness.env.attach import nats_connect_options

        return nats_connect_options(self.spec.nats)

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> System:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> System:
        """Bring everything up; on any failure tear down what was started and re-raise."""
        if self._state != "new":
            raise SagaproofError(f"this System was already {self._state}; create a new System for another run.")
        self._state = "starting"
        t0 = time.monotonic()
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        self.started_seconds = time.monotonic() - t0
        self._state = "running"
        self.bus.emit(SystemUp(self.started_seconds))
        return self

    def _start(self) -> None:
        self._check_programs()
        self.reaper.start()
        watch_process_groups(self.reaper.add_group, self.reaper.remove_group)  # plugins' fault commands
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.run_dir = Path(tempfile.mkdtemp(prefix="sagaproof-run-"))
        self.reaper.add_path(str(self.run_dir))
        self.loop = LoopThread()
        # NATS
        t = time.monotonic()
        if self.spec.nats.embedded:
            self.broker.users = service_users(list(self.spec.processes()), "sagaproof")
            self.nats = NatsCluster(self.run_dir, self.log_dir, size=self.spec.nats.cluster, reaper=self.reaper,
                                    users=dict(self.broker.users.values()),
                                    recorder_deny=[subj for st in self.spec.nats.streams if not st.consumed_on_read
                                                   for subj in st.subjects],
                                    ports=self.ports, on_port_retry=self.port_retried,
                                    on_starting=lambda node: self.bus.emit(
                                        ServiceStarting(f"nats-{node.index}", node.client_port)))
            route_via = None
            if self.chaos_links and self.spec.nats.cluster > 1:
                from sagaproof.harness.env.links import route_proxy

                route_via = lambda i, j, port: route_proxy(self, i, j, port)  # noqa: E731
            self.nats.start(route_via=route_via)
        self._ensure_streams()
        self.broker.start(self.nats_urls)
        self.bus.emit(NatsReady(self.nats_urls, time.monotonic() - t))
        # Services (those given by url are attached: running already, see harness/env/attach.py)
        # (a service with replicas runs one process per replica, NAME-1 .. NAME-N, each its own port and link)
        own = {name: s for name, s in self.spec.processes().items() if not s.attached}
        ports = {name: self.ports.take() for name in own}
        node_urls = self.nats_urls
        if self.chaos_links and own:
            from sagaproof.harness.env.links import start_links

            upstreams = {name: node_urls[i % len(node_urls)] for i, name in enumerate(own)}
            service_urls = start_links(self, upstreams)
        else:
            service_urls = {name: node_urls[i % len(node_urls)] for i, name in enumerate(own)}
        service_urls = self.broker.links(service_urls)  # each service through an observed link, as its own user
        shared_dir = self.run_dir / "shared"  # one per run, for every service and replica
        shared_dir.mkdir(parents=True, exist_ok=True)
        for name, svc_spec in own.items():
            data_dir = self.run_dir / "data" / name
            data_dir.mkdir(parents=True, exist_ok=True)
            command_for = self._command_for(svc_spec, service_urls[name], data_dir)
            argv, env = command_for(ports[name])
            log_path = self.log_dir / f"{name}.log"
            proc = ManagedProcess(name, argv, cwd=svc_spec.cwd, env=env, log_path=log_path, reaper=self.reaper,
                                  stop_timeout=svc_spec.stop_timeout)
            svc = Service(self, svc_spec, ports[name], data_dir, log_path, service_urls[name], proc)
            svc.command_for = command_for
            self.services[name] = svc
        attached = {name: s for name, s in self.spec.services.items() if s.attached}
        if attached:
            from sagaproof.harness.env.attach import attach_services

            # An AttachedService has the Service interface that tests, invariants and the nemesis use.
            found: dict[str, Any] = {**self.services, **attach_services(self, attached)}
            self.services = {name: found[name] for name in self.spec.processes()}  # the system file's order
        with ThreadPoolExecutor(max_workers=max(1, len(self.services))) as pool:
            futures = {pool.submit(self._start_service, svc) if svc.name in own else pool.submit(svc.wait_ready): svc
                       for svc in self.services.values()}
            errors: list[EnvironmentStartError] = []
            for fut, svc in futures.items():
                try:
                    seconds = fut.result()
                    self.bus.emit(ServiceReady(svc.name, svc.port, seconds))
                except EnvironmentStartError as exc:
                    errors.append(exc)
            if errors:
                raise errors[0]
        self.write_manifest()

    def _command_for(self, svc_spec: ServiceSpec, nats_url: str, data_dir: Path) -> Any:
        """port -> (argv, env) of a service's process: its command and env with the placeholders filled in."""
        assert self.run_dir is not None
        shared_dir = self.run_dir / "shared"  # one per run, for every service and replica

        def command_for(port: int) -> tuple[list[str], dict[str, str]]:
            values = {"port": str(port), "nats_url": nats_url, "data_dir": str(data_dir),
                      "shared_dir": str(shared_dir), "python": sys.executable, "name": svc_spec.name,
                      "service": svc_spec.service, "replica": str(svc_spec.replica or 1),
                      "system_dir": str(self.spec.root)}
            argv = [expand(a, values) for a in svc_spec.command]
            env = inherited(os.environ, self.replayed_env if self.replaying else None) if svc_spec.inherit_env \
                else {"PATH": os.environ.get("PATH", "")}
            env.update({k: expand(v, values) for k, v in svc_spec.env.items()})
            env.update(self.extra_env)
            env.setdefault("PYTHONUNBUFFERED", "1")
            return argv, env

        return command_for

    def _start_service(self, svc: Service) -> float:
        """Start one of the run's services and wait until it is ready; returns the seconds it took.

        A service whose port was taken by another program after it was chosen (it no longer binds, or the
        service exits during start-up saying its address is in use) is started again on another port (a
        :class:`PortRetried` event), at most :data:`ports.RETRIES` times; any other failure is raised."""
        moves = 0
        while True:
            if not port_choice.bindable(svc.port) and moves < port_choice.RETRIES:
                moves += 1
                if self._move_service(svc, f"port {svc.port} was bound by another program before the service "
                                           f"started"):
                    continue
            self.bus.emit(ServiceStarting(svc.name, svc.port))
            try:
                svc.process.start()
            except OSError as exc:  # the program cannot be run (not executable, a bad interpreter line): the command's
                raise ConfigError(f"{self.spec.path}: services.{svc.spec.service}.command: service '{svc.name}' could "
                                  f"not be started ({exc.strerror or exc}: {exc.filename or svc.spec.command[0]}); "
                                  f"fix the command (a program that exists and may be run).") from exc
            svc._emit("start")
            try:
                return svc.wait_ready()
            except ServiceCrashed as exc:
                said = [line for line in log_since(svc.process).splitlines() if port_taken(line)]
                if not said or moves >= port_choice.RETRIES:
                    raise
                moves += 1
                if not self._move_service(svc, said[-1].strip()):
                    raise ConfigError(
                        f"{self.spec.path}: services.{svc.spec.service}: service '{svc.name}' could not listen on its "
                        f"port, which another program holds (its log: {said[-1].strip()[:160]}), and its command and "
                        f"env fix that port rather than use {{port}}; use {{port}} (a free port chosen per run) or "
                        f"stop the program that holds it.") from exc

    def _move_service(self, svc: Service, why: str) -> bool:
        """Give a service that is not running another port (its command and env made again); False when its
        command does not use ``{port}`` (another port would change nothing)."""
        old = svc.port
        new = self.ports.take()
        argv, env = svc.command_for(new)
        if (argv, env) == svc.command_for(old):
            self.ports.release(new)
            return False
        self.ports.release(old)
        svc.process.argv, svc.process.env = argv, env
        svc.port = new
        svc.http = ServiceHTTP("127.0.0.1", new)
        self.port_retried(svc.name, old, new, why)
        return True

    def port_retried(self, process: str, old: int, new: int, why: str) -> None:
        """Record that `process` could not bind `old` (another program has it) and is started on `new`."""
        self.bus.emit(PortRetried(process, old, new, why))

    def write_manifest(self) -> Path:
        """Write report_dir/system.json: what runs where (pids, ports, logs), for people and tools."""
        import json

        data = {
            "services": self.describe(),
            "nats": [{"index": n.index, "pid": n.process.pid, "client_port": n.client_port, "http_port": n.http_port,
                      "cluster_port": n.cluster_port, "log": str(n.process.log_path)} for n in (self.nats.nodes if self.nats else [])],
            "proxy_api": getattr(self.proxy_server, "url", None),
            "reaper_pid": self.reaper.pid,
            "run_dir": str(self.run_dir),
            **self.manifest_extra,
        }
        path = self.report_dir / "system.json"
        path.write_text(json.dumps(data, indent=2))
        return path

    def _check_programs(self) -> None:
        """Every service's program must exist before anything starts (a config mistake: exit 2)."""
        for name, svc_spec in self.spec.processes().items():
            if svc_spec.attached:
                continue  # not ours to start
            program = expand(svc_spec.command[0], {"python": sys.executable, "name": name,
                                                  "system_dir": str(self.spec.root)})
            if "{" in program:
                continue  # built from a run-time placeholder; the start-up itself will tell
            if Path(program).is_absolute() or "/" in program:
                found = (svc_spec.cwd / program).exists()
            else:
                found = shutil.which(program) is not None or (svc_spec.cwd / program).exists()
            if not found:
                raise ConfigError(f"{self.spec.path}: services.{svc_spec.service}.command: the program '{program}' was not "
                                  f"found on PATH or in {svc_spec.cwd}; install it or fix the command.")
            script = script_of(program, svc_spec.command[1:])
            if script is not None and not (svc_spec.cwd / script).exists():
                raise ConfigError(f"{self.spec.path}: services.{svc_spec.service}.command: the script '{script}' "
                                  f"does not exist in {svc_spec.cwd}; fix its path (relative to the service's cwd).")

    def _ensure_streams(self) -> None:
        from sagaproof.harness.env.streams import create_streams

        if not self.spec.nats.streams:
            return
        assert self.loop is not None
        replicas_default = self.spec.nats.cluster if self.spec.nats.embedded else 1
        self.loop.run(create_streams(self.nats_urls, self.spec, replicas_default, self.nats_options), timeout=60)

    def close(self) -> None:
        """Stop services, proxies and NATS; free ports; idempotent and safe after a failed start."""
        with self._lock:
            if self._state == "closed":
                return
            self._state = "closed"
        errors: list[BaseException] = []
        # stop services in parallel, then proxies, then NATS
        services = list(self.services.values())
        if services:
            with ThreadPoolExecutor(max_workers=len(services)) as pool:
                for fut in [pool.submit(s.process.stop) for s in services]:
                    try:
                        fut.result()
                    except Exception as exc:  # noqa: BLE001
                        errors.append(exc)
        if self.recorder is not None and self.loop is not None:
            try:
                self.loop.run(self.recorder.stop(), timeout=15)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        self.broker.close()
        if self.proxy_server is not None and self.loop is not None:
            try:
                self.loop.run(self.proxy_server.close(), timeout=15)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
        if self.loop is not None:
            self.loop.close()
        if self.nats is not None:
            self.nats.stop()
        if self.run_dir is not None:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            self.reaper.remove_path(str(self.run_dir))
        try:
            watch_process_groups(None)
            self.reaper.close()
        finally:
            self.ports.close()  # only now: nothing of the run listens any more

    # ------------------------------------------------------------------ helpers for invariants and tests
    def eventually(self, fn: Callable[[], object], timeout: float = 10.0, interval: float = 0.1) -> None:
        """Call fn() until it stops raising AssertionError (or returning False/a reason); else raise it."""
        from sagaproof.harness.env.wait import eventually as _eventually

        __tracebackhide__ = True
        ok, why = _eventually(fn, timeout, interval)
        if not ok:
            raise AssertionError(f"not true within {timeout:g}s: {why}")

    # ------------------------------------------------------------------ helpers
    def restart_nats(self, index: int = 0) -> None:
        """Kill a NATS node and start it again with its JetStream data (embedded NATS only)."""
        if self.nats is None:
            raise SagaproofError("restart_nats needs embedded NATS; this run uses nats.url.")
        from sagaproof.harness.env.links import restart_nats_node

        restart_nats_node(self, index)  # the recorder back on it before the services
        self.bus.emit(ProcessChanged(f"nats-{index}", "restart", self.nats.nodes[index].process.pid))

    def describe(self) -> list[dict[str, Any]]:
        """One row per service: name, port, URL, NATS URL (credentials hidden), log path."""
        return [{"name": s.name, "service": s.spec.service, "replica": s.spec.replica, "port": s.port, "url": s.url,
                 "nats_url": hide_password(s.nats_url), "log": str(s.log_path), "pid": s.pid}
                for s in self.services.values()]

    def replicas(self, service: str) -> list[Service]:
        """The processes of a service: its replicas (``NAME-1`` .. ``NAME-N``), or the one process of it."""
        return [s for s in self.services.values() if s.spec.service == service]


def _with_credentials(url: str, user: str | None, password: str | None) -> str:
    if not user or "@" in url:
        return url
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{user}:{password or ''}@{rest}"
