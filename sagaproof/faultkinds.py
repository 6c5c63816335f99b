"""The fault kinds, defined once: name, family, what it does, and its colour in reports.

Adding a fault kind is one entry here plus its implementation (a toxic in ``sagaproof.chaos.nemesis``'s
network table, or a process action in its runner). The system file, the CLI's ``--faults``, the nemesis
and the report all read this table. This module imports nothing from sagaproof.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["FAULT_KINDS", "KINDS", "NETWORK_KINDS", "PROCESS_KINDS", "FaultKind", "fault_colour"]

Family = Literal["network", "message", "process", "broker"]


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault the nemesis can inject."""

    name: str
    family: Family
    summary: str
    colour: str

    @property
    def through_proxy(self) -> bool:
        """True if the fault is a toxic on a service's fault proxy (network and message faults)."""
        return self.family in ("network", "message")


KINDS: dict[str, FaultKind] = {k.name: k for k in (
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
)}

FAULT_KINDS: tuple[str, ...] = tuple(KINDS)
NETWORK_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if k.through_proxy)
PROCESS_KINDS: tuple[str, ...] = tuple(k.name for k in KINDS.values() if not k.through_proxy)


def fault_colour(kind: str | None) -> str:
    """The report colour of a fault kind (grey for anything else)."""
    found = KINDS.get(kind or "")
    return found.colour if found else "#6b7280"
