"""The fault kinds, defined once: name, family, what it does, and its colour in reports; and the kinds a
plugin adds.

A built-in kind is one entry here plus its implementation (a toxic in ``sagaproof.chaos.nemesis``'s network
table, or a process action in its runner). A plugin adds a kind with :func:`register_fault_kind`, backed by a
callable (a context manager: entering injects the fault, leaving heals it) or by commands (``inject`` and
``heal`` argument lists); the nemesis then draws it like any other kind when the fault menu names it. The
system file, the CLI's ``--faults``, the nemesis and the report all read this table (:func:`fault_kind_names`,
:data:`KINDS`). This module imports nothing from sagaproof.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["FAULT_KINDS", "KINDS", "NETWORK_KINDS", "PROCESS_KINDS", "CustomFault", "FaultAction", "FaultKind",
           "FaultKindError", "custom_kinds", "fault_colour", "fault_kind_names", "register_fault_kind",
           "run_command", "unregister_fault_kind", "watch_process_groups"]

Family = Literal["network", "message", "process", "broker", "custom"]


@dataclass(frozen=True)
class CustomFault:
    """What a plugin's fault action is told: which fault, on which service, for how long (seconds)."""

    id: str
    kind: str
    target: str
    duration: float
    params: Mapping[str, Any] = field(default_factory=dict)


FaultAction = Callable[[CustomFault], AbstractContextManager[object]]
"""A plugin's fault: called when the fault starts; entering the context injects it, leaving heals it."""


class FaultKindError(Exception):
    """A fault kind could not be registered, injected or healed (the message says which and why)."""


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault the nemesis can inject (``action`` only for a plugin's kind)."""

    name: str
    family: Family
    summary: str
    colour: str
    action: FaultAction | None = None

    @property
    def through_proxy(self) -> bool:
        """True if the fault is a toxic on a service's fault proxy (network and message faults)."""
        return self.family in ("network", "message")


_BUILTIN: tuple[FaultKind, ...] = (
    FaultKind("latency", "network", "delay every chunk by a fixed time", "#d97706"),
    FaultKind("jitter", "network", "delay every chunk by a random time", "#ca8a04"),
    FaultKind("partition", "network", "disable the proxy: connections drop, reconnects are refused", "#dc2626"),
    FaultKind("cut", "network", "reset every connection (TCP RST)", "#b91c1c"),
    FaultKind("throttle", "network", "limit bandwidth", "#9333ea"),
    FaultKind("slice", "network", "cut data into small delayed slices", "#7c3aed"),
    FaultKind("drop", "message", "drop NATS messages on a subject", "#db2777"),
    FaultKind("duplicate", "message", "deliver NATS messages twice", "#2563eb"),
    FaultKind("delay", "message", "hold NATS messages back", "#ea580c"),
    FaultKind("reorder", "message", "swap the order of NATS messages", "#0891b2"),
    FaultKind("kill", "process", "SIGKILL a service, restart it on the same port and data", "#111827"),
    FaultKind("pause", "process", "SIGSTOP a service, then SIGCONT", "#4b5563"),
    FaultKind("nats_restart", "broker", "kill the NATS server and restart it with its JetStream data", "#0f766e"),
)

KINDS: dict[str, FaultKind] = {k.name: k for k in _BUILTIN}

# The built-in kinds (these tuples never change); fault_kind_names() includes the plugins' kinds.
FAULT_KINDS: tuple[str, ...] = tuple(KINDS)
NETWORK_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k.through_proxy)
PROCESS_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k.family in ("process", "broker"))


def fault_kind_names() -> tuple[str, ...]:
    """Every fault kind's name: the built-in ones, then those plugins registered, in that order."""
    return tuple(KINDS)


def custom_kinds() -> dict[str, FaultKind]:
    """The kinds registered by plugins (name -> kind)."""
    return {name: k for name, k in KINDS.items() if k.family == "custom"}


def fault_colour(kind: str | None) -> str:
    """The report colour of a fault kind (grey for anything else)."""
    found = KINDS.get(kind or "")
    return found.colour if found else "#6b7280"


def register_fault_kind(name: str, action: FaultAction | None = None, *, inject: Sequence[str] | None = None,
                        heal: Sequence[str] | None = None, summary: str = "", colour: str = "#6b7280",
                        cwd: str | Path | None = None, timeout: float = 30.0) -> FaultKind:
    """Add a fault kind the nemesis can draw once a fault menu (``[chaos] faults``, ``--faults``) names it.

    Give either ``action`` (a callable returning a context manager: entering it injects the fault on
    ``fault.target``, leaving it heals), or ``inject`` (and optionally ``heal``): argument lists run as commands,
    in ``cwd``, with ``{target}``, ``{fault_id}``, ``{kind}`` and ``{duration}`` replaced, and the same values in
    ``SAGAPROOF_FAULT_TARGET``, ``SAGAPROOF_FAULT_ID``, ``SAGAPROOF_FAULT_KIND``, ``SAGAPROOF_FAULT_DURATION``;
    a command that exits non-zero, or runs longer than ``timeout`` seconds, fails the fault (reported by the
    check "fault schedule carried out"). Registering the same name again with the same definition is harmless.

    Raises:
        FaultKindError: the name is a built-in kind's or is not a plain identifier, or neither (or both) of
            ``action`` and ``inject`` is given.
    """
    if not name.isidentifier():
        raise FaultKindError(f"fault kind {name!r} is not a plain name (letters, digits and _); rename it")
    existing = KINDS.get(name)
    if existing is not None and existing.family != "custom":
        raise FaultKindError(f"fault kind {name!r} is a built-in kind; give the plugin's kind another name")
    if (action is None) == (inject is None):
        raise FaultKindError(f"fault kind {name!r} needs either a callable (action) or an inject command, "
                             f"and not both")
    if inject is not None:
        from pathlib import Path

        action = _command_action(name, list(inject), None if heal is None else list(heal),
                                 None if cwd is None else Path(cwd), float(timeout))
    assert action is not None
    kind = FaultKind(name, "custom", summary or f"a plugin's fault ({name})", colour, action)
    KINDS[name] = kind
    return kind


def unregister_fault_kind(name: str) -> None:
    """Remove a plugin's kind (tests; a built-in kind cannot be removed)."""
    if name in KINDS and KINDS[name].family == "custom":
        del KINDS[name]


def _command_action(name: str, inject: list[str], heal: list[str] | None, cwd: Path | None,
                    timeout: float) -> FaultAction:
    if not inject or not all(isinstance(a, str) for a in inject):
        raise FaultKindError(f"fault kind {name!r}: inject must be a non-empty list of strings (a program and "
                             f"its arguments)")

    @contextmanager
    def action(fault: CustomFault) -> Iterator[None]:
        _run_command(fault, "inject", inject, cwd, timeout)
        try:
            yield
        finally:
            if heal:
                _run_command(fault, "heal", heal, cwd, timeout)

    return action


# Who else must know of a fault command's process group while it runs (the harness's reaper, which kills it
# should the harness itself die): (add, remove), set by whoever started the environment.
_group_watch: tuple[Callable[[int], None], Callable[[int], None]] | None = None


def watch_process_groups(add: Callable[[int], None] | None, remove: Callable[[int], None] | None = None) -> None:
    """Tell ``add(pgid)`` of every fault command's process group as it starts and ``remove(pgid)`` once it is
    gone (the harness's reaper); ``watch_process_groups(None)`` stops telling."""
    global _group_watch
    _group_watch = None if add is None or remove is None else (add, remove)


def run_command(args: Sequence[str], *, cwd: str | Path | None, timeout: float, env: Mapping[str, str] | None = None,
                log: IO[bytes] | None = None,
                watch: tuple[Callable[[int], None], Callable[[int], None]] | None = None) -> tuple[int | None, bytes]:
    """Run a fault command in a process group of its own, told to ``watch`` (default: the one
    :func:`watch_process_groups` set, the harness's reaper) while it runs; the whole group is killed when the
    command ends or outlives ``timeout`` seconds, so nothing it started outlives it. Its output goes to ``log``
    (or is returned). Returns (its exit code, None when it timed out; its output when not logged).

    Raises:
        OSError: the program could not be started.
    """
    import os
    import signal
    import subprocess

    proc = subprocess.Popen(list(args), cwd=cwd, env=None if env is None else dict(env), stdin=subprocess.DEVNULL,
                            stdout=log if log is not None else subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, close_fds=True)
    watch = watch if watch is not None else _group_watch
    if watch is not None:
        watch[0](proc.pid)
    out = b""
    code: int | None = None
    try:
        if log is None:
            out, _ = proc.communicate(timeout=timeout)
        else:
            proc.wait(timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    finally:
        try:  # nothing a fault command started outlives it
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        if log is None:
            more, _ = proc.communicate()
            out = out or more or b""
        else:
            proc.wait()
        if watch is not None:
            watch[1](proc.pid)
    return code, out


def _run_command(fault: CustomFault, stage: str, argv: list[str], cwd: Path | None, timeout: float) -> None:
    """Run one of a plugin's fault commands (:func:`run_command`); FaultKindError when it fails."""
    values = {"target": fault.target, "fault_id": fault.id, "kind": fault.kind, "duration": f"{fault.duration:g}"}
    try:
        args = [a.format(**values) for a in argv]
    except (KeyError, IndexError, ValueError) as exc:
        raise FaultKindError(f"the {stage} command of fault kind {fault.kind!r} has a placeholder other than "
                             f"{{target}}, {{fault_id}}, {{kind}}, {{duration}} ({exc})") from exc
    import os

    env = dict(os.environ, SAGAPROOF_FAULT_TARGET=fault.target, SAGAPROOF_FAULT_ID=fault.id,
               SAGAPROOF_FAULT_KIND=fault.kind, SAGAPROOF_FAULT_DURATION=values["duration"])
    try:
        code, out = run_command(args, cwd=cwd, timeout=timeout, env=env)
    except OSError as exc:
        raise FaultKindError(f"the {stage} command of fault kind {fault.kind!r} could not be started "
                             f"({exc.strerror or exc}): {' '.join(args)}") from exc
    if code is None:
        raise FaultKindError(f"the {stage} command of fault kind {fault.kind!r} ran longer than {timeout:g}s "
                             f"and was killed: {' '.join(args)}")
    if code != 0:
        tail = out.decode(errors="replace").strip().splitlines()[-1:] if out else []
        raise FaultKindError(f"the {stage} command of fault kind {fault.kind!r} exited with code "
                             f"{code}" + (f" ({tail[0]})" if tail else "") + f": {' '.join(args)}")
