"""OS processes the harness owns: start in their own process group, log to a file, stop in escalating steps.

Used for nats-server nodes and for every service. Each process runs in a new session (so it is its own
process group and Ctrl-C in the terminal reaches only the harness), its stdout and stderr go to one log
file in the run's report directory, and its group is registered with the :mod:`harness.env.reaper` watchdog
so nothing outlives the harness. Stopping sends SIGTERM to the group, waits, then SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Sequence
from pathlib import Path

from sagaproof.harness.env.reaper import Reaper


def tail(path: Path, lines: int = 20) -> list[str]:
    """The last `lines` lines of a log file (empty if it does not exist)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError:
        return []
    return list(deque(data.splitlines(), maxlen=lines))


class ManagedProcess:
    """One OS process (and its process group) with a log file; restartable with the same command."""

    def __init__(self, name: str, argv: Sequence[str], *, cwd: Path, env: dict[str, str], log_path: Path,
                 reaper: Reaper | None, stop_timeout: float = 5.0):
        self.name = name
        self.argv = list(argv)
        self.cwd = cwd
        self.env = env
        self.log_path = log_path
        self.stop_timeout = stop_timeout
        self._reaper = reaper
        self._proc: subprocess.Popen[bytes] | None = None
        self._paused = False
        self._lock = threading.RLock()
        self.ignored_sigterm = False
        self.starts = 0
        self.log_offset = 0

    # ------------------------------------------------------------------ state
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def paused(self) -> bool:
        return self._paused and self.running

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc else None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Start the process; it must not be running already."""
        with self._lock:
            if self.running:
                raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            log = open(self.log_path, "ab", buffering=0)
            self.log_offset = log.tell()  # where this start's output begins (log-line probes read from here)
            try:
                if self.starts:
                    log.write(f"\n--- sagaproof: restarting {self.name} ---\n".encode())
                self._proc = subprocess.Popen(
                    self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, close_fds=True,
                )
            finally:
                log.close()
            self.starts += 1
            self._paused = False
            if self._reaper is not None:
                self._reaper.add_group(self._proc.pid)

    def _signal_group(self, sig: int) -> bool:
        if self._proc is None:
            return False
        try:
            os.killpg(self._proc.pid, sig)
            return True
        except (ProcessLookupError, PermissionError):
            return False

    def _reap(self) -> None:
        """After the leader exited: make sure no member of its group is left, then unregister it."""
        if self._proc is None:
            return
        self._signal_group(signal.SIGKILL)
        if self._reaper is not None:
            self._reaper.remove_group(self._proc.pid)

    def stop(self, timeout: float | None = None) -> int | None:
        """SIGTERM the group, wait up to `timeout`, then SIGKILL. Idempotent. Returns the exit code."""
        with self._lock:
            if self._proc is None:
                return None
            if self._proc.poll() is None:
                if self._paused:
                    self._signal_group(signal.SIGCONT)
                self._signal_group(signal.SIGTERM)
                try:
                    self._proc.wait(timeout=self.stop_timeout if timeout is None else timeout)
                except subprocess.TimeoutExpired:
                    self.ignored_sigterm = True
                    self._signal_group(signal.SIGKILL)
                    self._proc.wait()
            self._reap()
            self._paused = False
            return self._proc.returncode

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash, as far as the service can tell)."""
        with self._lock:
            if self._proc is None:
                return
            self._signal_group(signal.SIGKILL)
            self._proc.wait()
            self._reap()
            self._paused = False

    def pause(self) -> None:
        """SIGSTOP the group: the process keeps its sockets but does nothing."""
        with self._lock:
            if self.running and not self._paused:
                self._signal_group(signal.SIGSTOP)
                self._paused = True

    def resume(self) -> None:
        """SIGCONT a paused group."""
        with self._lock:
            if self._proc is not None and self._paused:
                self._signal_group(signal.SIGCONT)
            self._paused = False

    def log_tail(self, lines: int = 20) -> list[str]:
        return tail(self.log_path, lines)


_INTERPRETERS = re.compile(r"^(python[\d.]*|pypy[\d.]*|node|deno|bun|ruby|perl|php|sh|bash|zsh)$")


def script_of(program: str, args: tuple[str, ...] | list[str]) -> str | None:
    """The script an interpreter is told to run (``python app.py``: ``app.py``); None when there is none to
    check (an option first, ``-m``, ``-c``, or a placeholder filled in at run time)."""
    if not args or not _INTERPRETERS.match(Path(program).name) and program != sys.executable:
        return None
    first = args[0]
    if first.startswith("-") or "{" in first or not first.strip():
        return None
    return first
