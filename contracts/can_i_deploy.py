"""Can I deploy? The candidate versions of one or more services against the versions that run in an
environment (recorded in git, see :mod:`sagaproof.contracts.deploy`), in both directions, as a matrix.

For the set of candidates deployed together, every pair of a producer version and a consumer version that
will meet is checked, channel by channel, with :func:`~sagaproof.contracts.compat.is_compatible`:

* a candidate as **producer**: each consumer that will run (the other candidates, and the services already
  running that are not redeployed) must accept every message the candidate may send (``messages``);
* a candidate as **consumer**: it must accept every message each producer that will run may send
  (``messages``), and every message the versions those producers replace may have left in a JetStream
  stream: the version running now of a producer deployed in the same set, and the previous version of every
  producer (``stored messages``);
* a candidate that **no longer sends** on a subject a running consumer receives, which the version it
  replaces sent and nothing that will run sends, is unsafe (``no longer sent``);
* **pacts**: each message of the message pacts held by a consumer version that will run, whose provider is a
  candidate (or whose consumer is), must be valid under one of the schemas the provider version sends on
  the pact's subject (``pact``; a static check, ``verify-pacts`` stays the live one).

Each row has a verdict: ``safe``, ``unsafe`` (with the consumer schema path and, when one was found, a
counterexample message) or ``undecided`` (could not be shown either way). Only a matrix of safe rows is
safe to deploy: undecided counts as not safe.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from sagaproof.contracts.check import relevant_messages
from sagaproof.contracts.compat import Verdict, is_compatible
from sagaproof.contracts.generate import compile_validator
from sagaproof.contracts.model import ContractSet, Message
from sagaproof.contracts.sources import PactMessage
from sagaproof.contracts.subjects import matches, overlaps

__all__ = ["Matrix", "Row", "Version", "can_i_deploy"]

RowVerdict = Literal["safe", "unsafe", "undecided"]
Kind = Literal["messages", "stored messages", "no longer sent", "pact"]
_RANK = {"safe": 0, "undecided": 1, "unsafe": 2}


@dataclass
class Version:
    """One version of a service: its contracts (only its side of each channel) and its message pacts.

    Attributes:
        service: the service name.
        ref: what identifies the version: a commit id, ``work tree``, or ``LOCATION@REF`` for a peer whose
            contracts live elsewhere.
        label: the short form shown in tables (a 7-character commit id, ``work tree``).
        contracts: the service's contracts at that version.
        pacts: the messages of the message pacts the service holds as a consumer at that version.
    """

    service: str
    ref: str
    label: str
    contracts: ContractSet
    pacts: list[PactMessage] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str]:
        return (self.service, self.ref)

    def sends(self) -> list[tuple[str, list[Message]]]:
        return [(p, ch.producers[self.service]) for p, ch in sorted(self.contracts.channels.items())
                if self.service in ch.producers]

    def receives(self) -> list[tuple[str, list[Message]]]:
        return [(p, ch.consumers[self.service]) for p, ch in sorted(self.contracts.channels.items())
                if self.service in ch.consumers]


@dataclass
class Row:
    """One line of the matrix: a consumer version, a producer version, a channel, and the verdict."""

    consumer: Version
    producer: Version
    channel: str
    kind: Kind
    verdict: RowVerdict
    reason: str
    message: str | None = None
    counterexample: Any = None
    has_counterexample: bool = False
    consumer_path: str = ""
    accepted: bool = False  # undecided on a channel the system file lists in [contracts] accept_undecided

    def detail(self) -> str:
        """The reason, and the counterexample when there is one (JSON)."""
        if self.verdict == "safe":
            return self.reason
        text = self.reason
        if self.has_counterexample:
            text += f"; e.g. {json.dumps(self.counterexample, default=str)}"
        return text

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "consumer": self.consumer.service, "consumer_ref": self.consumer.ref,
            "producer": self.producer.service, "producer_ref": self.producer.ref,
            "channel": self.channel, "check": self.kind, "message": self.message, "verdict": self.verdict,
            "reason": self.reason, "consumer_path": self.consumer_path, "accepted": self.accepted,
        }
        if self.has_counterexample:
            d["counterexample"] = self.counterexample
        return d


@dataclass
class Matrix:
    """The answer: every row, and notes that do not change the verdict."""

    environment: str
    candidates: list[Version]
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(r.verdict == "safe" or (r.verdict == "undecided" and r.accepted) for r in self.rows)

    @property
    def unsafe(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "unsafe"]

    @property
    def undecided(self) -> list[Row]:
        return [r for r in self.rows if r.verdict == "undecided" and not r.accepted]

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def summary(self) -> str:
        """One sentence: safe or not, and why."""
        names = ", ".join(f"{v.service} ({v.label})" for v in self.candidates)
        if self.ok:
            return f"safe to deploy {names} to {self.environment} ({len(self.rows)} checks)"
        parts = []
        if self.unsafe:
            parts.append(f"{len(self.unsafe)} unsafe")
        if self.undecided:
            parts.append(f"{len(self.undecided)} undecided")
        return f"NOT safe to deploy {names} to {self.environment}: {' and '.join(parts)} of {len(self.rows)} checks"

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "environment": self.environment,
                "candidates": [{"service": v.service, "ref": v.ref} for v in self.candidates],
                "matrix": [r.to_dict() for r in self.rows], "notes": self.notes,
                "unsafe": len(self.unsafe), "undecided": len(self.undecided)}


def _union(msgs: list[Message], attr: str) -> Any:
    schemas = [True if getattr(m, attr) is None else getattr(m, attr) for m in msgs]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


class _Judge:
    """is_compatible with a cache: many versions share the very same schemas."""

    def __init__(self, max_examples: int, confirm_examples: int) -> None:
        self.max_examples, self.confirm_examples = max_examples, confirm_examples
        self.cache: dict[tuple[str, str, int], Verdict] = {}

    def __call__(self, producer: Any, consumer: Any, confirm: bool = True) -> Verdict:
        key = (json.dumps(producer, sort_keys=True, default=str), json.dumps(consumer, sort_keys=True, default=str),
               int(confirm))
        if key not in self.cache:
            self.cache[key] = is_compatible(producer, consumer, max_examples=self.max_examples,
                                            confirm_examples=self.confirm_examples if confirm else 0)
        return self.cache[key]

    def message(self, pm: Message, cmsgs: list[Message]) -> tuple[Verdict, str]:
        """The verdict for one producer message against the consumer's messages (payload, then headers)."""
        v = self(pm.payload, _union(cmsgs, "payload"))
        if v.status != "ok":
            return v, "payload"
        cheads = [m for m in cmsgs if m.headers is not None]
        if cheads:
            hv = self(pm.headers if pm.headers is not None else {"type": "object"}, _union(cheads, "headers"),
                      confirm=False)
            if hv.status != "ok":
                return hv, "headers"
        return v, "payload"


_STATUS: dict[str, RowVerdict] = {"ok": "safe", "incompatible": "unsafe", "unknown": "undecided"}


def _pair_rows(pv: Version, cv: Version, kind: Kind, judge: _Judge,
               stored: Callable[[str, str], bool]) -> list[Row]:
    rows = []
    for ppat, pmsgs in pv.sends():
        for cpat, cmsgs in cv.receives():
            if not overlaps(ppat, cpat):
                continue
            if kind == "stored messages" and not stored(ppat, cpat):
                continue
            channel = ppat if ppat == cpat else f"{ppat} -> {cpat}"
            worst: Row | None = None
            for pm in relevant_messages(pmsgs, cmsgs, ppat != cpat):
                v, part = judge.message(pm, cmsgs)
                verdict = _STATUS[v.status]
                if verdict == "safe":
                    reason = "every message accepted" if kind == "messages" else \
                        f"every message {pv.service} {pv.label} may have left is accepted"
                else:
                    who = f"{pv.service} {pv.label} sends {pm.name}" if kind == "messages" else \
                        f"{pv.service} {pv.label} may have left {pm.name} in a stream"
                    reason = f"{who}, which {cv.service} {cv.label} may reject: " \
                        + ("headers: " if part == "headers" else "") + v.reason
                row = Row(cv, pv, channel, kind, verdict, reason, pm.name, v.counterexample, v.has_counterexample,
                          (f"/{part}" + v.consumer_path) if v.consumer_path else "")
                if worst is None or _RANK[verdict] > _RANK[worst.verdict]:
                    worst = row
            if worst is not None:
                rows.append(worst)
    return rows


def _relax(schema: Any, value: Any) -> Any:
    """*schema* without the ``required`` properties that *value* (a pact's example) leaves out: a pact names
    only what its consumer needs, and the provider may send more."""
    if not isinstance(schema, dict):
        return schema
    out = dict(schema)
    if isinstance(value, dict):
        if isinstance(out.get("required"), list):
            out["required"] = [k for k in out["required"] if k in value]
        if isinstance(out.get("properties"), dict):
            out["properties"] = {k: _relax(s, value[k]) if k in value else s for k, s in out["properties"].items()}
    if isinstance(value, list) and value and isinstance(out.get("items"), dict):
        dicts = [e for e in value if isinstance(e, dict)]
        if dicts:  # keys every element has; nested values from the first element that has each key
            common = {k: next(e[k] for e in dicts if k in e) for k in set.intersection(*(set(e) for e in dicts))}
            out["items"] = _relax(out["items"], common)
        else:
            out["items"] = _relax(out["items"], value[0])
    for key in ("allOf", "anyOf", "oneOf"):
        if isinstance(out.get(key), list):
            out[key] = [_relax(s, value) for s in out[key]]
    return out


def _declared(schema: Any) -> set[str] | None:
    """The property names an object schema declares (through allOf/anyOf/oneOf too); None if it declares none
    (a free-form object)."""
    if not isinstance(schema, dict):
        return None
    names: set[str] = set(schema.get("properties") or {}) if isinstance(schema.get("properties"), dict) else set()
    found = bool(names) or isinstance(schema.get("properties"), dict)
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(key) or []:
            more = _declared(sub)
            if more is not None:
                names |= more
                found = True
    return names if found else None


def _sub_schemas(schema: Any, key: str) -> list[Any]:
    if not isinstance(schema, dict):
        return []
    out = [schema["properties"][key]] if isinstance(schema.get("properties"), dict) \
        and key in schema["properties"] else []
    for k in ("allOf", "anyOf", "oneOf"):
        for sub in schema.get(k) or []:
            out += _sub_schemas(sub, key)
    return out


def _undeclared(schema: Any, value: Any, path: str = "") -> str | None:
    """The first property the pact's example has that the provider's schema does not declare (a provider
    sends what it declares; pact verification fails on a missing key), as a JSON pointer."""
    if isinstance(value, dict):
        names = _declared(schema)
        for k, v in value.items():
            if names is not None and k not in names:
                return f"{path}/{k}"
            for sub in _sub_schemas(schema, k):
                found = _undeclared(sub, v, f"{path}/{k}")
                if found:
                    return found
    if isinstance(value, list) and isinstance(schema, dict) and isinstance(schema.get("items"), dict):
        for i, e in enumerate(value):
            found = _undeclared(schema["items"], e, f"{path}/{i}")
            if found:
                return found
    return None


def _pact_row(pact: PactMessage, pv: Version, cv: Version) -> Row:
    subject = pact.subject
    base = dict(consumer=cv, producer=pv, channel=subject or "(no subject)", kind="pact", message=pact.description)
    if not pact.readable:
        return Row(**base, verdict="undecided",  # type: ignore[arg-type]
                   reason=f"the pact message '{pact.description}' ({pact.file}) is not JSON; it cannot be checked "
                          f"statically")
    sends = [(p, msgs) for p, msgs in pv.sends() if subject is None or matches(p, subject)]
    if not sends:
        if subject is None:
            return Row(**base, verdict="undecided",  # type: ignore[arg-type]
                       reason=f"the pact message '{pact.description}' names no subject, and {pv.service} {pv.label} "
                              f"sends nothing")
        return Row(**base, verdict="unsafe",  # type: ignore[arg-type]
                   reason=f"{cv.service}'s pact expects '{pact.description}' on {subject}, and {pv.service} {pv.label} "
                          f"does not send on {subject}")
    first_error = ""
    for _pat, msgs in sends:
        for m in msgs:
            schema = True if m.payload is None else m.payload
            validator = compile_validator(_relax(schema, pact.content))
            extra = _undeclared(schema, pact.content)
            if validator.is_valid(pact.content) and extra is None:
                return Row(**base, verdict="safe",  # type: ignore[arg-type]
                           reason=f"{pv.service}'s {m.name} may carry the pact's message")
            if not first_error:
                if extra is not None:
                    first_error = f"the pact expects {extra}, which {m.name} does not declare"
                for err in validator.iter_errors(pact.content):
                    where = "".join(f"/{p}" for p in err.instance_path) or "/"
                    first_error = f"{m.name} rejects it at {where}: {err.message}"
                    break
    if subject is None:
        return Row(**base, verdict="undecided",  # type: ignore[arg-type]
                   reason=f"the pact message '{pact.description}' names no subject, and no message {pv.service} "
                          f"{pv.label} sends carries it ({first_error})")
    return Row(**base, verdict="unsafe", counterexample=pact.content, has_counterexample=True,  # type: ignore[arg-type]
               reason=f"{cv.service}'s pact message '{pact.description}' is not a message {pv.service} {pv.label} "
                      f"may send on {subject}: {first_error}")


def can_i_deploy(candidates: Iterable[Version], running: dict[str, Version], previous: dict[str, Version], *,
                 environment: str, stored: Callable[[str, str], bool] | None = None, max_examples: int = 100,
                 confirm_examples: int = 0, accept_undecided: Iterable[str] = ()) -> Matrix:
    """Check the candidates, deployed together, against what runs in *environment*.

    Args:
        candidates: the versions to deploy (one per service).
        running: service -> the version that runs in the environment now (candidates' included).
        previous: service -> the version that ran before it (its messages may still be in streams).
        environment: the environment's name (for the report).
        stored: ``stored(producer_pattern, consumer_pattern)`` is true when a message on both may be kept in a
            JetStream stream; default: every subject may be.
        max_examples / confirm_examples: budgets of the counterexample search (see ``is_compatible``).
        accept_undecided: channels whose undecided rows the system file accepts (marked, not failing).

    Returns:
        The :class:`Matrix`; ``ok`` only when every row is safe.

    Example::

        m = can_i_deploy([Version("order", "work tree", "work tree", cs_order)], running, previous,
                         environment="prod")
        sys.exit(m.exit_code)
    """
    cands = {v.service: v for v in candidates}
    stored = stored or (lambda _p, _c: True)
    judge = _Judge(max_examples, confirm_examples)
    after = {**{s: v for s, v in running.items() if s not in cands}, **cands}
    pairs: dict[tuple[Any, ...], tuple[Version, Version, Kind]] = {}

    def add(pv: Version, cv: Version, kind: Kind) -> None:
        pairs.setdefault((pv.key, cv.key, kind), (pv, cv, kind))

    services = sorted(set(after) | set(running) | set(previous))
    for c in cands.values():
        for p in services:
            live = after.get(p)
            if live is not None:
                add(live, c, "messages")
            left = [running[p]] if p in cands and p in running else []
            left += [previous[p]] if p in previous else []
            for old in left:
                if live is None or old.ref != live.ref:
                    add(old, c, "stored messages")
    for cand in cands.values():
        for q in after.values():
            add(cand, q, "messages")

    rows: list[Row] = []
    for pv, cv, kind in pairs.values():
        rows += _pair_rows(pv, cv, kind, judge, stored)
    rows += _removed_rows(cands, running, after)
    notes: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for qv in after.values():
        for pact in qv.pacts:
            if pact.provider not in cands and qv.service not in cands:
                continue
            key = (qv.service, pact.provider, pact.description, pact.subject or "")
            if key in seen:
                continue
            seen.add(key)
            provider = after.get(pact.provider)
            if provider is None:
                notes.append(f"{qv.service} {qv.label} has a pact with {pact.provider}, which does not run in "
                             f"{environment}; not checked")
                continue
            rows.append(_pact_row(pact, provider, qv))
    for c in cands.values():
        for cpat, _ in c.receives():
            if not any(overlaps(ppat, cpat) for v in after.values() for ppat, _ in v.sends()):
                notes.append(f"{c.service} {c.label} receives {cpat}, which nothing running in {environment} "
                             f"(or deployed with it) sends")
    accepted = set(accept_undecided)
    for r in rows:
        if r.verdict == "undecided" and r.channel in accepted:
            r.accepted = True
    rows.sort(key=lambda r: (-_RANK[r.verdict], r.consumer.service, r.producer.service, r.channel, r.kind))
    return Matrix(environment, list(cands.values()), rows, sorted(set(notes)))


def _removed_rows(cands: dict[str, Version], running: dict[str, Version], after: dict[str, Version]) -> list[Row]:
    rows = []
    for p, new in cands.items():
        old = running.get(p)
        if old is None or old.ref == new.ref:
            continue
        for q in after.values():
            for cpat, _ in q.receives():
                if not any(overlaps(ppat, cpat) for ppat, _ in old.sends()):
                    continue
                if any(overlaps(ppat, cpat) for v in after.values() for ppat, _ in v.sends()):
                    continue
                rows.append(Row(q, new, cpat, "no longer sent", "unsafe",
                                f"{q.service} {q.label} receives {cpat}, which {p} {old.label} sends and "
                                f"{p} {new.label} no longer does: nothing would send it"))
    return rows
