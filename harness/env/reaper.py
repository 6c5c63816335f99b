"""A watchdog process that kills what the harness started if the harness dies without cleaning up.

The harness starts one reaper per run (``Reaper.start()``) in a session of its own and keeps the write end
of a pipe to it. It tells the reaper about every process group it creates (``add_group``) and every
scratch directory (``add_path``). When the pipe reaches end-of-file -- because the harness exited, raised,
was interrupted, or was killed with SIGKILL -- the reaper sends SIGKILL to every registered group that
is still alive, removes the scratch directories, and exits. A clean teardown unregisters everything first,
so the reaper then has nothing to do. This is the same idea as the testcontainers "Ryuk" reaper: cleanup
must not depend on our own process exiting cleanly.

Run as ``python -m sagaproof.harness.env.reaper`` (that is how ``Reaper.start`` runs it); it reads commands on stdin:
``group PGID``, ``ungroup PGID``, ``path DIR``, ``unpath DIR``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def main() -> int:
    """The reaper's own loop: read commands until EOF, then clean up."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C goes to the harness; we wait for its pipe to close
    groups: set[int] = set()
    paths: list[str] = []
    for line in sys.stdin:
        cmd, _, arg = line.strip().partition(" ")
        if cmd == "group":
            groups.add(int(arg))
        elif cmd == "ungroup":
            groups.discard(int(arg))
        elif cmd == "path":
            paths.append(arg)
        elif cmd == "unpath" and arg in paths:
            paths.remove(arg)
    for pgid in groups:
        _kill_group(pgid)
    for p in paths:
        shutil.rmtree(p, ignore_errors=True)
    return 0


class Reaper:
    """The harness's handle on its watchdog process."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start the watchdog; idempotent."""
        if self._proc is not None:
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "sagaproof.harness.env.reaper"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True, close_fds=True,
        )

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def _send(self, line: str) -> None:
        with self._lock:
            if self._proc is None or self._proc.stdin is None or self._proc.stdin.closed:
                return
            try:
                self._proc.stdin.write(line.encode() + b"\n")
                self._proc.stdin.flush()
            except (BrokenPipeError, ValueError):
                pass

    def add_group(self, pgid: int) -> None:
        self._send(f"group {pgid}")

    def remove_group(self, pgid: int) -> None:
        self._send(f"ungroup {pgid}")

    def add_path(self, path: str) -> None:
        self._send(f"path {path}")

    def remove_path(self, path: str) -> None:
        self._send(f"unpath {path}")

    def close(self) -> None:
        """Close the pipe (the reaper then kills whatever is still registered) and wait for it."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin:
                proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    sys.exit(main())
