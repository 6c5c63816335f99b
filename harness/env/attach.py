"""Attach mode: drive a system that is already deployed instead of starting it.

A service given by ``url`` (and no ``command``) in the system file is *attached*: the harness never starts or
stops it; it probes its readiness at that URL, sends the workload and the invariants' requests there, and
injects faults only in the ways the system file gives it:

* network and message faults through the team's Toxiproxy (``[chaos] toxiproxy_url``) on the proxy named by the
  service's ``proxy`` key (the team points the service's NATS connection at that proxy);
* process faults by running the service's ``commands`` (``kill``, ``restart``, ``pause``, ``resume``: argument
  lists such as ``kubectl`` or ``docker`` command lines, with ``{name}``, ``{url}``, ``{host}``, ``{port}``,
  ``{proxy}``, ``{python}`` and ``{system_dir}`` filled in). A kill is healed by ``restart`` followed by the
  readiness probe.

A fault kind that cannot be injected that way for every service (no proxy, no commands, a stock Toxiproxy
without the NATS-aware toxics, a broker the harness did not start) is left out of the fault menu, and the run's
notes say which and why: a fault is never pretended. NATS is the team's (``[nats] url``, several separated by
commas), reached with ``creds`` (a .creds file), ``nkey`` (a seed file) and ``tls`` (CA, client certificate
and key) as given: :func:`nats_connect_options` turns those into nats-py's connect arguments for everything the
harness connects (recorder, stream set-up, publishing workloads).
"""

from __future__ import annotations

import shlex
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sagaproof.harness.config import NatsSpec, ServiceSpec, expand
from sagaproof.harness.env.http import ServiceHTTP
from sagaproof.harness.env.process import tail
from sagaproof.harness.errors import EnvironmentStartError, SagaproofError, ServiceCrashed
from sagaproof.harness.events import ServiceStopped

from sagaproof.faultkinds import run_command

__all__ = ["AttachedService", "FaultCommandError", "attach_services", "nats_connect_options", "split_urls"]



class FaultCommandError(SagaproofError):
    """A fault command of an attached service failed (non-zero exit, timeout, or program not found)."""

    def __init__(self, message: str, *, service: str, action: str, exit_code: int | None = None):
        super().__init__(message)
        self.service = service
        self.action = action
        self.command_exit_code = exit_code  # (`exit_code` is the harness's own exit code of every error)


# ---------------------------------------------------------------------------- NATS access


def nats_connect_options(nats: NatsSpec) -> dict[str, Any]:
    """nats-py ``connect()`` keyword arguments for the credentials and TLS of [nats] (empty when none)."""
    options: dict[str, Any] = {}
    if nats.creds is not None:
        options["user_credentials"] = str(nats.creds)
    if nats.nkey is not None:
        options["nkeys_seed"] = str(nats.nkey)
    if nats.tls_ca is not None or nats.tls_cert is not None:
        ctx = ssl.create_default_context(cafile=str(nats.tls_ca) if nats.tls_ca else None)
        if nats.tls_cert is not None and nats.tls_key is not None:
            try:
                ctx.load_cert_chain(str(nats.tls_cert), str(nats.tls_key))
            except (ssl.SSLError, OSError) as exc:
                raise EnvironmentStartError(f"the client certificate {nats.tls_cert} and key {nats.tls_key} of "
                                            f"[nats] tls could not be loaded ({exc}); give a matching PEM "
                                            f"certificate and key.") from exc
        options["tls"] = ctx
        _quiet_asyncio_ssl_note()
    return options


def _quiet_asyncio_ssl_note() -> None:
    """asyncio logs "returning true from eof_received() has no effect when using ssl" whenever a TLS peer hangs up
    (nats-py's reader returns True); it is noise on the terminal, not something the user can act on."""
    import logging

    log = logging.getLogger("asyncio")
    if not any(getattr(f, "_sagaproof", False) for f in log.filters):
        class _Filter(logging.Filter):
            _sagaproof = True

            def filter(self, record: logging.LogRecord) -> bool:
                return "eof_received() has no effect when using ssl" not in record.getMessage()

        log.addFilter(_Filter())


def split_urls(url: str) -> list[str]:
    """``nats://a:4222,nats://b:4222`` -> the servers, in order."""
    return [u.strip() for u in url.split(",") if u.strip()]


# ---------------------------------------------------------------------------- attached services


class CommandControl:
    """The process side of an attached service: its fault commands (there is no local process)."""

    pid = None
    ignored_sigterm = False  # the harness never stops an attached service, so it cannot ignore a SIGTERM of ours

    def __init__(self, service: AttachedService):
        self.service = service
        self.log_path = service.log_path
        self._lock = threading.Lock()
        self.down = False
        self.paused = False

    @property
    def running(self) -> bool:
        return not self.down

    @property
    def returncode(self) -> int | None:
        return None

    def run(self, action: str) -> None:
        """Run the service's `action` command; FaultCommandError (with its output's tail) if it fails."""
        svc = self.service
        argv = svc.spec.commands.get(action)
        if argv is None:
            raise FaultCommandError(f"service '{svc.name}' has no {action} command; add "
                                    f"services.{svc.name}.commands.{action} to the system file.",
                                    service=svc.name, action=action)
        values = {"name": svc.name, "url": svc.url, "host": svc.host, "port": str(svc.port),
                  "proxy": svc.spec.proxy or "", "python": sys.executable, "system_dir": str(svc.system.spec.root)}
        args = [expand(a, values) for a in argv]
        timeout = svc.spec.command_timeout
        with self._lock:
            svc.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(svc.log_path, "ab", buffering=0) as log:
                log.write(f"--- sagaproof: {action}: {shlex.join(args)}\n".encode())
                try:  # in a process group of its own, known to the reaper, killed whole when it ends
                    code, _ = run_command(args, cwd=svc.system.spec.root, timeout=timeout, log=log,
                                          watch=(svc.system.reaper.add_group, svc.system.reaper.remove_group))
                except OSError as exc:
                    raise FaultCommandError(f"the {action} command of service '{svc.name}' could not be started "
                                            f"({exc.strerror or exc}); fix services.{svc.name}.commands.{action}.",
                                            service=svc.name, action=action) from exc
        if code != 0:
            what = f"did not finish within {timeout:g}s" if code is None else f"exited with code {code}"
            lines = tail(svc.log_path, 6)
            raise FaultCommandError(f"the {action} command of service '{svc.name}' {what}; last lines of "
                                    f"{svc.log_path}: " + " | ".join(lines), service=svc.name, action=action,
                                    exit_code=code)

    def stop(self, timeout: float | None = None) -> None:
        """Teardown: an attached service is not ours to stop; a paused one is resumed so we leave it running."""
        if self.paused and "resume" in self.service.spec.commands:
            try:
                self.resume()
            except FaultCommandError:
                pass

    def kill(self) -> None:
        self.run("kill")
        self.down = True

    def restart(self) -> None:
        self.run("restart")
        self.down = False
        self.paused = False

    def pause(self) -> None:
        self.run("pause")
        self.paused = True

    def resume(self) -> None:
        self.run("resume")
        self.paused = False

    def log_tail(self, lines: int = 20) -> list[str]:
        return tail(self.log_path, lines)


class AttachedService:
    """A service of a deployed system: reached at its URL; faulted only through its commands and its proxy.

    It has the interface of :class:`harness.env.system.Service` that tests, invariants, the workload and the
    nemesis use (``http``, ``url``, ``kill``, ``pause``, ``resume``, ``restart``, ``wait_ready``).
    """

    def __init__(self, system: Any, spec: ServiceSpec):
        assert spec.url is not None
        self.system = system
        self.spec = spec
        self.name = spec.name
        parts = urlsplit(spec.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.base_path = parts.path.rstrip("/")
        self.log_path = Path(system.log_dir) / f"{spec.name}.commands.log"
        self.nats_url = f"(its own; proxy {spec.proxy})" if spec.proxy else "(its own)"
        self.http = _PrefixedHTTP(self.host, self.port, self.base_path)
        self.process = CommandControl(self)
        self.data_dir = None
        self.ready_seconds: float | None = None

    @property
    def url(self) -> str:
        return str(self.spec.url)

    @property
    def running(self) -> bool:
        return self.process.running

    @property
    def pid(self) -> int | None:
        return None

    def start(self, wait: bool = True) -> None:
        """An attached service runs already; `start` only waits for it (after a kill, use restart)."""
        if wait:
            self.wait_ready()

    def wait_ready(self) -> float:
        """Block until the readiness probe passes at the service's URL; ServiceCrashed if it does not in time."""
        t0 = time.monotonic()
        ready = self.spec.ready
        deadline = t0 + ready.timeout
        last = "no answer yet"
        while ready.kind != "none":
            try:
                if ready.kind == "http":
                    with urllib.request.urlopen(f"{self.url}{ready.target}", timeout=2.0) as resp:
                        if 200 <= resp.status < 300:
                            break
                        last = f"HTTP {resp.status}"
                else:
                    with socket.create_connection((self.host, self.port), timeout=1.0):
                        break
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
            except (urllib.error.URLError, OSError, ValueError) as exc:
                last = str(getattr(exc, "reason", exc))
            if time.monotonic() >= deadline:
                probe = f"GET {self.url}{ready.target} answering 2xx" if ready.kind == "http" \
                    else f"a TCP connect to {self.host}:{self.port}"
                raise ServiceCrashed(f"attached service '{self.name}' did not become ready within "
                                     f"{ready.timeout:g}s (waited for {probe}; last: {last}); check that it runs "
                                     f"and that services.{self.name}.url is right.", service=self.name,
                                     log_path=str(self.log_path), tail=[])
            time.sleep(0.1)
        self.ready_seconds = time.monotonic() - t0
        return self.ready_seconds

    def stop(self, timeout: float | None = None) -> None:
        """Not ours to stop: see :meth:`CommandControl.stop`."""
        self.process.stop(timeout)

    def kill(self) -> None:
        """Run the `kill` command."""
        self.process.kill()
        self.system.bus.emit(ServiceStopped(self.name, "kill"))

    def pause(self) -> None:
        """Run the `pause` command."""
        self.process.pause()
        self.system.bus.emit(ServiceStopped(self.name, "pause"))

    def resume(self) -> None:
        """Run the `resume` command."""
        self.process.resume()
        self.system.bus.emit(ServiceStopped(self.name, "resume"))

    def restart(self, *, kill: bool = False, wait: bool = True) -> None:
        """Run `kill` (if asked) then `restart`, then wait for the readiness probe."""
        if kill:
            self.process.kill()
        self.process.restart()
        self.system.bus.emit(ServiceStopped(self.name, "restart"))
        if wait:
            self.wait_ready()

    def log_tail(self, lines: int = 20) -> list[str]:
        return self.process.log_tail(lines)

    def __repr__(self) -> str:
        return f"<AttachedService {self.name} url={self.url}>"


class _PrefixedHTTP(ServiceHTTP):
    """ServiceHTTP for a base URL that may carry a path prefix (http://gateway/payment)."""

    def __init__(self, host: str, port: int, prefix: str):
        super().__init__(host, port)
        self.prefix = prefix

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}{self.prefix}"

    def request(self, method: str, path: str, **kw: Any) -> Any:
        return super().request(method, f"{self.prefix}{path}", **kw)


def attach_services(system: Any, specs: dict[str, ServiceSpec]) -> dict[str, AttachedService]:
    """The attached services of a system, with their proxies checked on the Toxiproxy when chaos is on."""
    services = {name: AttachedService(system, spec) for name, spec in specs.items()}
    if system.chaos_links and system.spec.chaos.toxiproxy_url:
        from sagaproof.harness.env.links import _client
        from sagaproof.harness.errors import boundary

        client = _client(system)
        url = system.spec.chaos.toxiproxy_url
        with boundary("environment", lambda exc: f"the Toxiproxy at {url} could not be reached ({exc}); start it "
                                                 f"or fix chaos.toxiproxy_url."):
            existing = client.proxies()
        for name, spec in specs.items():
            if spec.proxy is None:
                continue
            if spec.proxy not in existing:
                known = ", ".join(sorted(existing)) or "none"
                raise EnvironmentStartError(
                    f"services.{name}.proxy names '{spec.proxy}', which the Toxiproxy at "
                    f"{system.spec.chaos.toxiproxy_url} does not have (its proxies: {known}); create it between "
                    f"{name} and NATS, or fix the name.")
            system.proxy_names[name] = spec.proxy
    return services
