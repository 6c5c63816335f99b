"""Ports for what a run starts (services, nats-server nodes, fault proxies, links), chosen so that no two runs
on one host share one.

A port handed out here is

* **outside the kernel's ephemeral range** (``/proc/sys/net/ipv4/ip_local_port_range``, read, never assumed;
  :data:`FALLBACK_EPHEMERAL` when it cannot be read), so no outgoing connection and nothing that binds port 0
  can be given it, and outside ``ip_local_reserved_ports``; candidates start at :data:`LOWEST` (well-known
  services live lower), or at 1024 if too few ports are left above it;
* **locked** for as long as the run holds it: one lock file per port (``<port>.lock``, ``flock`` exclusive,
  non-blocking) in a directory every sagaproof process on the host shares (:func:`lock_dir`), so two runs,
  ``--jobs N`` shards or CI jobs on one runner never take the same port; the kernel drops the lock when the
  holder dies, so a killed run leaves nothing to clean up;
* **free right now**: a test bind on 127.0.0.1 succeeds (something that is not sagaproof may be using it).

Each process tries the candidates in its own random order (from the OS, not from the run's seed: two runs of one
seed must not walk the same way), continuing where its last choice stopped. ``SAGAPROOF_PORT_ORDER=sequential``
walks them in ascending order instead (a testing aid: two processes then want the same ports, and only the
lock keeps them apart).

What is left, a program that is not sagaproof binding the port between the choice and the service's own bind,
is handled by the caller: :func:`port_taken` tells a bind failure, and the process is started again on another
port (:class:`~harness.events.PortRetried` in the history).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import re
import socket
import stat
import tempfile
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

from sagaproof.harness.errors import ConfigError

LOWEST = 10_000
FALLBACK_EPHEMERAL = (32768, 60999)  # Linux's default
MIN_CANDIDATES = 256  # fewer than this above LOWEST: start at 1024
ORDER_ENV = "SAGAPROOF_PORT_ORDER"
DIR_ENV = "SAGAPROOF_PORT_DIR"
RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESERVED_FILE = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")

# What a program says when the port it was given is taken (Linux, BSD/macOS, Windows, Go, Node, Java...).
TAKEN_PATTERN = re.compile(
    r"address already in use|EADDRINUSE|errno 98\b|errno 48\b|\[Errno 98\]|\[Errno 48\]|WSAEADDRINUSE"
    r"|only one usage of each socket address|port is already allocated|BindException", re.IGNORECASE)


class PortsExhausted(OSError):
    """No candidate port is free and unlocked."""


def ephemeral_range(path: Path = RANGE_FILE) -> tuple[int, int]:
    """The kernel's ephemeral port range (inclusive), or :data:`FALLBACK_EPHEMERAL` if it cannot be read."""
    try:
        low, high = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        return FALLBACK_EPHEMERAL
    if not 0 < low <= high <= 65535:
        return FALLBACK_EPHEMERAL
    return low, high


def reserved_ports(path: Path = RESERVED_FILE) -> set[int]:
    """The ports in ``ip_local_reserved_ports`` ("8080,9000-9010"); empty if there is none or it is unreadable."""
    try:
        text = path.read_text().strip()
    except OSError:
        return set()
    out: set[int] = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        low, _, high = part.partition("-")
        try:
            a, b = int(low), int(high or low)
        except ValueError:
            continue
        out.update(range(a, b + 1))
    return out


def candidates(ephemeral: tuple[int, int] | None = None, reserved: Iterable[int] | None = None) -> list[int]:
    """Every port this module may hand out, ascending: not below 1024, not in the ephemeral range, not reserved."""
    low, high = ephemeral if ephemeral is not None else ephemeral_range()
    skip = set(reserved if reserved is not None else reserved_ports())

    def between(start: int) -> list[int]:
        return [p for p in range(start, 65536) if not low <= p <= high and p not in skip]

    ports = between(LOWEST)
    if len(ports) < MIN_CANDIDATES:
        ports = between(1024)
    if not ports:  # an ephemeral range that covers everything: the lock and the test bind are all there is
        ports = [p for p in range(LOWEST, 65536) if p not in skip]
    return ports


def _usable(path: Path) -> bool:
    """A real directory (not a link) this process can create files in, and, when another user owns it, with the
    sticky bit (so nobody else can delete a lock file that is held)."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode) or not os.access(path, os.W_OK | os.X_OK):
        return False
    return st.st_uid == os.getuid() or bool(st.st_mode & stat.S_ISVTX)


def lock_dir() -> Path:
    """The directory of the per-port lock files: $SAGAPROOF_PORT_DIR, else ``<temp dir>/sagaproof-ports``
    (world-writable with the sticky bit, so every user's runs share it), else a directory of this user's own."""
    chosen = os.environ.get(DIR_ENV)
    if chosen:
        path = Path(chosen)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"{DIR_ENV}={chosen} cannot be used for the port lock files ({exc.strerror or exc}); "
                              f"point it at a writable directory or unset it.") from exc
        if not _usable(path):
            raise ConfigError(f"{DIR_ENV}={chosen} is not a directory this user can create files in; point it "
                              f"at a writable directory or unset it.")
        return path
    shared = Path(tempfile.gettempdir()) / "sagaproof-ports"
    try:
        shared.mkdir(mode=0o1777, exist_ok=True)
        st = os.lstat(shared)
        if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and stat.S_IMODE(st.st_mode) != 0o1777:
            os.chmod(shared, 0o1777)  # mkdir's mode is cut by the umask
    except OSError:
        pass
    if _usable(shared):
        return shared
    own = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()) / f"sagaproof-ports-{os.getuid()}"
    own.mkdir(mode=0o700, exist_ok=True)
    return own


def _try_lock(directory: Path, port: int) -> int | None:
    """An fd holding the exclusive lock of `port`, or None if another holder has it (or its file is not ours to
    open)."""
    try:
        fd = os.open(directory / f"{port}.lock", os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return None
    try:
        os.fchmod(fd, 0o644)  # whatever the umask: other users' runs must be able to open it to lock it
    except OSError:
        pass  # not ours
    return fd


def bindable(port: int, host: str = "127.0.0.1") -> bool:
    """Whether a socket can bind (host, port) right now (without SO_REUSEADDR: a port with connections still in
    TIME_WAIT counts as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def port_taken(text: str) -> bool:
    """Whether a program's output (or an error message) says its port was taken."""
    return bool(TAKEN_PATTERN.search(text))


def is_addr_in_use(exc: BaseException) -> bool:
    """Whether an exception is (or says) EADDRINUSE."""
    return getattr(exc, "errno", None) == errno.EADDRINUSE or port_taken(str(exc))


class Allocator:
    """The process's port chooser: one order of candidates, a cursor, and the locks it holds."""

    def __init__(self, directory: Path | None = None, order: str | None = None) -> None:
        self.directory = directory or lock_dir()
        self.sequential = (order if order is not None else os.environ.get(ORDER_ENV, "")).strip() == "sequential"
        self.ports = candidates()
        if not self.sequential:
            random.Random(os.urandom(16)).shuffle(self.ports)  # seeded from the OS, never from the run's seed
        self._cursor = 0
        self._held: dict[int, int] = {}  # port -> fd of its lock
        self._lock = threading.Lock()

    def take(self, host: str = "127.0.0.1") -> int:
        """Lock and return the next candidate that no other sagaproof process holds and that binds now.

        The port stays locked until :meth:`release`; raises :class:`PortsExhausted` when every candidate is
        held or bound."""
        with self._lock:
            n = len(self.ports)
            for i in range(n):
                index = (self._cursor + i) % n
                port = self.ports[index]
                if port in self._held:
                    continue
                fd = _try_lock(self.directory, port)
                if fd is None:
                    continue
                if not bindable(port, host):
                    os.close(fd)
                    continue
                self._held[port] = fd
                self._cursor = index + 1
                return port
        raise PortsExhausted(errno.EADDRINUSE, f"no free port outside the ephemeral range (lock files in "
                                               f"{self.directory}); stop other runs or free some ports.")

    def release(self, port: int) -> None:
        """Drop the lock of `port` (no-op if this process does not hold it)."""
        with self._lock:
            fd = self._held.pop(port, None)
        if fd is not None:
            os.close(fd)

    def held(self) -> set[int]:
        with self._lock:
            return set(self._held)


_allocator: Allocator | None = None
_allocator_pid = -1
_allocator_lock = threading.Lock()


def allocator() -> Allocator:
    """The process-wide :class:`Allocator` (made on first use; a child made by fork makes its own)."""
    global _allocator, _allocator_pid
    with _allocator_lock:
        if _allocator is None or _allocator_pid != os.getpid():
            _allocator, _allocator_pid = Allocator(), os.getpid()
        return _allocator


KEPT = 128  # free_port(): how many of the latest ports stay locked
_kept: list[int] = []


def free_port(host: str = "127.0.0.1") -> int:
    """A port for a server that a test or a benchmark starts itself: chosen like the harness's, and kept locked
    against other sagaproof processes until this process has asked for :data:`KEPT` more (or exits), so the
    server has long since bound it. What the harness starts holds its ports in a :class:`Ports` instead."""
    chooser = allocator()
    port = chooser.take(host)
    with _allocator_lock:
        _kept.append(port)
        old = _kept[:-KEPT]
        del _kept[:-KEPT]
    for p in old:
        chooser.release(p)
    return port


class Ports:
    """The ports one owner (a System, a NATS cluster) holds: taken from the process's allocator, released
    together by :meth:`close` (the owner's close), or one by one when a port turned out to be taken."""

    def __init__(self, alloc: Allocator | None = None) -> None:
        self._alloc = alloc
        self._ports: list[int] = []
        self._lock = threading.Lock()

    @property
    def allocator(self) -> Allocator:
        return self._alloc or allocator()

    def take(self) -> int:
        port = self.allocator.take()
        with self._lock:
            self._ports.append(port)
        return port

    def replace(self, port: int) -> int:
        """A new port instead of `port`, which another program took: the new one is locked before the old one is
        let go (so this process is not handed the old one again at once)."""
        new = self.take()
        self.release(port)
        return new

    def release(self, port: int) -> None:
        with self._lock:
            if port not in self._ports:
                return
            self._ports.remove(port)
        self.allocator.release(port)

    @property
    def ports(self) -> list[int]:
        with self._lock:
            return list(self._ports)

    def close(self) -> None:
        """Release every port held; idempotent."""
        with self._lock:
            ports, self._ports = self._ports, []
        for port in ports:
            self.allocator.release(port)


T = TypeVar("T")
RETRIES = 5  # how many other ports a process is tried on after its port was taken


def with_port(pool: Ports, use: Callable[[int], T], on_retry: Callable[[int, int, str], None] | None = None,
              tries: int = RETRIES + 1) -> T:
    """``use(port)`` on a port taken from `pool`; when it fails because the port is in use (:func:`is_addr_in_use`)
    it is called again on another port (``on_retry(old, new, reason)`` first), at most `tries` times in all.
    Any other failure, or the last one, is raised (the port released)."""
    port = pool.take()
    for attempt in range(tries):
        try:
            return use(port)
        except Exception as exc:
            if attempt == tries - 1 or not is_addr_in_use(exc):
                pool.release(port)
                raise
            new = pool.replace(port)
            if on_retry is not None:
                on_retry(port, new, str(exc))
            port = new
    raise AssertionError("unreachable")  # pragma: no cover
