"""The in-memory model of a system's event contracts: channels (NATS subject patterns), who sends and who
receives on each, and the resolved JSON Schema of every message."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from sagaproof.contracts.subjects import matches

__all__ = ["Channel", "ContractSet", "Message", "SubjectSchema"]

Action = Literal["send", "receive"]


@dataclass(frozen=True)
class SubjectSchema:
    """A plain JSON Schema file mapped to a subject in the system file (for teams without AsyncAPI)."""

    subject: str
    schema_path: Path
    producers: list[str] = field(default_factory=list)
    consumers: list[str] = field(default_factory=list)


@dataclass(eq=False)
class Message:
    """One message declared on a channel, with its payload schema fully resolved (no ``$ref`` left).

    ``file`` and ``pointer`` locate the message declaration (for error messages and reports).
    """

    name: str
    payload: Any
    headers: Any = None
    content_type: str | None = None
    file: str = ""
    pointer: str = ""

    @property
    def location(self) -> str:
        return f"{self.file}#{self.pointer}" if self.pointer else self.file


@dataclass
class Channel:
    """A subject pattern with the services that send and receive on it.

    ``producers``/``consumers`` map service name to the messages that service sends/receives there;
    ``messages`` holds every message declared for the channel (by any document), keyed by name;
    ``delivery`` maps a receiving service to the delivery guarantee its receive operation states with the
    extension key ``x-sagaproof-delivery`` (``at-most-once``: losing messages while it is away is intended).
    """

    subject: str
    producers: dict[str, list[Message]] = field(default_factory=dict)
    consumers: dict[str, list[Message]] = field(default_factory=dict)
    messages: dict[str, Message] = field(default_factory=dict)
    declared_in: list[str] = field(default_factory=list)
    delivery: dict[str, str] = field(default_factory=dict)  # receiver -> "at-most-once" | "at-least-once" (x-sagaproof-delivery)


class ContractSet:
    """All channels of a system, keyed by subject pattern (wildcards ``*`` and ``>`` allowed)."""

    def __init__(self, channels: dict[str, Channel] | None = None, services: list[str] | None = None,
                 files: list[str] | None = None) -> None:
        self.channels: dict[str, Channel] = channels or {}
        self.services: list[str] = services or []
        self.files: list[str] = files or []
        self._matching = lru_cache(maxsize=65536)(self._channels_matching)

    def __repr__(self) -> str:
        return f"ContractSet({len(self.channels)} channels, services={self.services})"

    def channel(self, subject: str) -> Channel:
        """The channel declared with exactly this subject pattern, created empty if absent."""
        ch = self.channels.get(subject)
        if ch is None:
            ch = self.channels[subject] = Channel(subject)
        return ch

    def _channels_matching(self, subject: str) -> tuple[Channel, ...]:
        return tuple(ch for pat, ch in self.channels.items() if matches(pat, subject))

    def channels_matching(self, subject: str) -> tuple[Channel, ...]:
        """Channels whose pattern matches the concrete *subject* (cached)."""
        return self._matching(subject)

    def sender_of(self, subject: str) -> list[str]:
        """Services declared to send on a concrete *subject*, sorted."""
        return sorted({s for ch in self.channels_matching(subject) for s in ch.producers})

    def receivers_of(self, subject: str) -> list[str]:
        """Services declared to receive on a concrete *subject*, sorted."""
        return sorted({s for ch in self.channels_matching(subject) for s in ch.consumers})
