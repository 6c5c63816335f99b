"""Pact message pacts (pact-python 4, V4 asynchronous messages) for NATS events.

Consumer side: :func:`message_pact` builds a V4 pact of the events a consumer expects (with pact
matchers from :mod:`pact.match`), runs the consumer's handler on each example message, and writes the pact
file. Provider side: :func:`verify_pacts` replays every interaction against a ``produce`` callback (which
the harness implements by triggering the real provider and capturing the message from NATS) and lets
pact-python's ``Verifier`` decide.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagaproof.contracts.errors import ContractsError, ContractSourceError

if TYPE_CHECKING:
    from pact.types import Message as PactMessage

__all__ = ["MessagePact", "PactConsumerError", "PactInteraction", "PactResult", "message_pact", "verify_pacts"]

# pact's FFI otherwise reports usage statistics over the network; we only talk to loopback.
os.environ.setdefault("PACT_DO_NOT_TRACK", "true")

Produce = Callable[[str, list[dict[str, Any]]], dict[str, Any]]


class PactConsumerError(ContractsError, AssertionError):
    """The consumer's handler failed on a message of its own pact (or was never run)."""


class MessagePact:
    """Builder of one consumer/provider message pact. Use through :func:`message_pact`."""

    def __init__(self, consumer: str, provider: str, pact_dir: str | Path) -> None:
        from pact import Pact

        self.consumer, self.provider, self.pact_dir = consumer, provider, Path(pact_dir)
        self._pact = Pact(consumer, provider).with_specification("V4")
        self._verified = False
        self.descriptions: list[str] = []

    def expects(self, description: str, body: Any, *, given: str | list[str] | dict[str, dict[str, Any]] | None = None,
                subject: str | None = None, metadata: dict[str, Any] | None = None,
                content_type: str = "application/json") -> MessagePact:
        """Declare an event the consumer handles.

        Args:
            description: the message description (the provider's trigger is looked up by it).
            body: the example body; values may be pact matchers (``pact.match.uuid()``, ``like(...)``, ...).
            given: provider state(s): a name, a list of names, or ``{name: params}``.
            subject: the NATS subject, stored in the message metadata as ``subject``.
            metadata: further metadata.
        """
        inter = self._pact.upon_receiving(description, "Async")
        states: dict[str, dict[str, Any]] = (
            {} if given is None else {given: {}} if isinstance(given, str)
            else {g: {} for g in given} if isinstance(given, list) else dict(given))
        for name, params in states.items():
            inter.given(name, params or None)
        inter.with_body(body, content_type)
        meta = dict(metadata or {})
        if subject is not None:
            meta["subject"] = subject
        if meta:
            inter.with_metadata(meta)
        self.descriptions.append(description)
        self._verified = False
        return self

    def verify(self, handler: Callable[[Any, dict[str, Any]], None]) -> None:
        """Call *handler(body, metadata)* with each example message (bodies parsed from JSON).

        Raises:
            PactConsumerError: the handler raised on some message.
        """
        def call(body: Any, metadata: dict[str, Any]) -> None:
            text = None if body is None else body.decode() if isinstance(body, bytes) else str(body)
            try:
                value = json.loads(text) if text else None
            except ValueError:
                value = text
            handler(value, dict(metadata))

        errors = self._pact.verify(call, "Async", raises=False)
        if errors:
            detail = "; ".join(str(e) for e in errors)
            raise PactConsumerError(f"{self.consumer}'s handler failed on its pact with {self.provider}: {detail}")
        self._verified = True

    def write(self) -> Path:
        """Write (or overwrite) ``<consumer>-<provider>.json`` in the pact directory and return its path."""
        if not self._verified:
            raise PactConsumerError(f"the pact {self.consumer}-{self.provider} was not verified; call verify(handler) "
                                    "before writing it")
        self.pact_dir.mkdir(parents=True, exist_ok=True)
        self._pact.write_file(self.pact_dir, overwrite=True)
        return self.pact_dir / f"{self.consumer}-{self.provider}.json"


@contextmanager
def message_pact(consumer: str, provider: str, pact_dir: str | Path) -> Iterator[MessagePact]:
    """Context manager for a consumer test: declare messages, verify the handler, the pact is written on exit.

    Example::

        from pact import match
        with message_pact("payment", "order", "contracts/pacts") as pact:
            pact.expects("an order was created", {"order_id": match.uuid(), "total": match.number(12.5)},
                         subject="orders.created")
            pact.verify(lambda body, meta: handle_order_created(body))
    """
    mp = MessagePact(consumer, provider, pact_dir)
    yield mp
    mp.write()


@dataclass
class PactInteraction:
    """The verdict of one interaction."""

    consumer: str
    description: str
    ok: bool
    provider_states: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"consumer": self.consumer, "description": self.description, "ok": self.ok,
                "provider_states": self.provider_states}


@dataclass
class PactResult:
    """The result of :func:`verify_pacts` (pact-python's verdict). ``output`` is the verifier's text."""

    ok: bool
    provider: str
    interactions: list[PactInteraction]
    errors: list[str]
    output: str
    pact_files: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "provider": self.provider, "interactions": [i.to_dict() for i in self.interactions],
                "errors": self.errors, "pact_files": self.pact_files}


def _pacts_for(pact_dir: Path, provider: str) -> list[Path]:
    if not pact_dir.is_dir():
        raise ContractSourceError(f"Pact directory {pact_dir} does not exist; run the consumer tests that write the pacts first.")
    found = []
    for f in sorted(pact_dir.glob("*.json")):
        try:
            doc = json.loads(f.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ContractSourceError(f"Pact file {f} is not valid JSON; regenerate it with the consumer tests.") from err
        if isinstance(doc, dict) and (doc.get("provider") or {}).get("name") == provider:
            found.append(f)
    return found


def verify_pacts(pact_dir: str | Path, provider: str, produce: Produce, *, request_timeout: float = 5.0) -> PactResult:
    """Verify every pact whose provider is *provider* in *pact_dir* with pact-python's ``Verifier``.

    Args:
        pact_dir: the directory with the pact files.
        provider: the provider name (pacts for other providers are skipped).
        produce: ``produce(description, provider_states) -> {"body": ..., "metadata": {...}}``; it makes the
            provider emit the message (e.g. by an HTTP call) and returns what was captured from NATS.
        request_timeout: seconds pact-python waits for each message (its default is 5).
            ``provider_states`` is a list of ``{"name": ..., "params": {...}}``. ``body`` may be a JSON
            value or raw bytes. An exception fails that interaction.

    Returns:
        A :class:`PactResult` whose ``ok`` is pact-python's verdict.
    """
    from pact import Verifier

    files = _pacts_for(Path(pact_dir), provider)
    if not files:
        return PactResult(True, provider, [], [], f"no pacts for provider {provider} in {pact_dir}", [])

    def handler(name: str, metadata: dict[str, Any] | None) -> PactMessage:
        states = list((metadata or {}).get("providerStates") or [])
        msg = produce(name, states)
        if not isinstance(msg, dict) or "body" not in msg:
            raise TypeError(f"produce() must return {{'body': ..., 'metadata': {{...}}}} for {name!r}, got {msg!r}")
        body = msg["body"]
        contents = body if isinstance(body, bytes) else json.dumps(body).encode()
        return {"contents": contents, "metadata": dict(msg.get("metadata") or {}),
                "content_type": msg.get("content_type", "application/json")}

    def state(state: str, action: str, parameters: dict[str, Any] | None) -> None:
        # Provider states are handed to produce() through the message metadata; nothing to set up here.
        return None

    verifier = Verifier(provider).message_handler(handler).state_handler(state, teardown=True)
    verifier.set_request_timeout(int(request_timeout * 1000))  # how long pact waits for each message
    for f in files:
        verifier.add_source(f)
    errors: list[str] = []
    try:
        verifier.verify()
        ok = True
    except RuntimeError as exc:
        ok = False
        errors.append(str(exc))
    results = getattr(verifier, "results", {}) or {}
    inters = [PactInteraction(r.get("consumer", ""), r.get("description", ""), r.get("result") == "OK",
                              list(r.get("providerStates") or [])) for r in results.get("interactionResults", [])]
    for e in results.get("errors", []) or []:
        errors.append(json.dumps(e, default=str) if not isinstance(e, str) else e)
    ok = ok and bool(results.get("result", ok))
    output = "\n".join(results.get("output", []) or [])
    return PactResult(ok, provider, inters, errors, output, [str(f) for f in files])
