"""Validation of live NATS messages against the contract of their subject (used by the harness recorder).

Each payload schema is compiled once with jsonschema-rs; the subject -> schemas lookup (wildcards
included) is cached per concrete subject. The valid path is one dict lookup, one ``json.loads`` and one
``is_valid`` per candidate schema; error details are computed only for invalid messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

import jsonschema_rs
from sagaproof.contracts.model import ContractSet

__all__ = ["LiveValidator", "Violation"]

Kind = Literal["schema", "headers", "undeclared", "not-json"]
_UNPARSED: Any = object()


@dataclass(frozen=True)
class Violation:
    """A live message that breaks its contract.

    Attributes:
        subject: the concrete NATS subject.
        producer: the producing service where known (the only declared sender, or the one given), else None.
        pointer: JSON pointer into the message of the rejected value ("" for the whole message).
        message: what is wrong, in words.
        payload: the raw message.
        kind: ``schema`` | ``headers`` | ``undeclared`` (no contract for the subject) | ``not-json``.
        schema_path: JSON pointer into the schema of the keyword that rejects it.
    """

    subject: str
    producer: str | None
    pointer: str
    message: str
    payload: bytes
    kind: Kind = "schema"
    schema_path: str = ""

    def to_dict(self) -> dict[str, Any]:
        try:
            body: Any = json.loads(self.payload)
        except ValueError:
            body = self.payload.decode("utf-8", "replace")
        return {"kind": self.kind, "subject": self.subject, "producer": self.producer, "pointer": self.pointer,
                "schema_path": self.schema_path, "message": self.message, "payload": body}


def _ptr(parts: Any) -> str:
    return "".join("/" + str(p).replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class _Entry:
    names: list[str]
    validators: list[Any]
    header_validators: list[Any]
    producer: str | None


class LiveValidator:
    """Validates messages seen on the wire against a :class:`ContractSet`.

    Example::

        lv = LiveValidator(cs)
        for v in lv.validate("orders.created", b'{"order_id": 1}', None):
            print(v.pointer, v.message)
    """

    def __init__(self, cs: ContractSet) -> None:
        self._cs = cs
        self._compiled: dict[str, Any] = {}
        self._entries: dict[str, _Entry | None] = {}

    def _compile(self, schema: Any) -> Any:
        key = json.dumps(schema, sort_keys=True, default=str)
        v = self._compiled.get(key)
        if v is None:
            v = self._compiled[key] = jsonschema_rs.validator_for(schema, validate_formats=True)
        return v

    def _entry(self, subject: str) -> _Entry | None:
        try:
            return self._entries[subject]
        except KeyError:
            pass
        channels = self._cs.channels_matching(subject)
        entry: _Entry | None = None
        if channels:
            # Producer-declared messages define what may be on the wire; a subject only consumers declare
            # falls back to the messages declared for the channel.
            msgs = [m for ch in channels for ms in ch.producers.values() for m in ms]
            if not msgs:
                msgs = [m for ch in channels for m in ch.messages.values()]
            uniq: dict[int, Any] = {}
            for m in msgs:
                uniq.setdefault(id(m), m)
            msgs = list(uniq.values())
            senders = self._cs.sender_of(subject)
            entry = _Entry(names=[m.name for m in msgs], validators=[self._compile(m.payload) for m in msgs],
                           header_validators=[self._compile(m.headers) for m in msgs if m.headers is not None],
                           producer=senders[0] if len(senders) == 1 else None)
        if len(self._entries) > 100_000:  # bound the cache for subjects with unbounded tokens (ids in subjects)
            self._entries.clear()
        self._entries[subject] = entry
        return entry

    accepts_parsed_body = True  # validate() takes body=, the payload its caller parsed with json.loads already

    def validate(self, subject: str, payload: bytes, headers: dict[str, str] | None = None, *,
                 producer: str | None = None, body: Any = _UNPARSED) -> list[Violation]:
        """Return the violations of one message (empty when it conforms).

        Args:
            subject: the concrete subject the message was published on.
            payload: the raw message body (JSON expected).
            headers: NATS headers, checked when the contract declares a headers schema.
            producer: the producing service if the caller knows it (overrides the contract's guess).
            body: ``json.loads(payload)`` when the caller has it already (saves parsing it twice); only
                for a payload that parsed.
        """
        entry = self._entry(subject)
        if entry is None:
            return [Violation(subject, producer, "", f"no contract declares subject {subject}", payload, "undeclared")]
        who = producer or entry.producer
        if body is _UNPARSED:
            try:
                body = json.loads(payload)
            except json.JSONDecodeError as exc:
                return [Violation(subject, who, "", f"payload is not JSON ({exc.msg})", payload, "not-json")]
            except UnicodeDecodeError as exc:  # bytes that are not UTF-8/16/32 (json.loads decodes first)
                return [Violation(subject, who, "", f"payload is not JSON (not valid {exc.encoding}: {exc.reason})",
                                  payload, "not-json")]
        out: list[Violation] = []
        if not any(v.is_valid(body) for v in entry.validators):
            out.append(self._explain(subject, who, body, payload, entry))
        if entry.header_validators:
            h = dict(headers or {})
            if not any(v.is_valid(h) for v in entry.header_validators):
                err = next(iter(entry.header_validators[0].iter_errors(h)))
                out.append(Violation(subject, who, _ptr(err.instance_path), f"headers: {err.message}", payload,
                                     "headers", _ptr(err.schema_path)))
        return out

    def quick(self, subject: str) -> Any:
        """A fast check for one subject's messages, or None: a callable ``ok(body) -> bool`` that is True only
        when :meth:`validate` would find nothing (for a declared subject without a headers schema). When it
        says False, or there is none, call :meth:`validate` for the violations."""
        entry = self._entry(subject)
        if entry is None or entry.header_validators:
            return None
        validators = entry.validators
        if len(validators) == 1:
            return validators[0].is_valid
        return lambda body: any(v.is_valid(body) for v in validators)

    @staticmethod
    def _explain(subject: str, who: str | None, body: Any, payload: bytes, entry: _Entry) -> Violation:
        # Report the errors of the message schema it comes closest to (fewest errors).
        best: list[Any] | None = None
        best_name = ""
        for name, v in zip(entry.names, entry.validators, strict=True):
            errs = list(v.iter_errors(body))
            if best is None or len(errs) < len(best):
                best, best_name = errs, name
        assert best
        err = best[0]
        more = f" (and {len(best) - 1} more)" if len(best) > 1 else ""
        what = f"{best_name}: " if len(entry.names) > 1 else ""
        return Violation(subject, who, _ptr(err.instance_path), f"{what}{err.message}{more}", payload, "schema",
                         _ptr(err.schema_path))
