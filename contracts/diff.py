"""``contracts diff``: the breaking-change gate between the contracts at a base (git ref or directory) and
the working tree.

Each change is classified from the point of view of deploying the changed service alone:

* a producer change is **breaking for consumers** when the new producer schema allows a message that an
  existing (base) consumer rejects (a required field removed or renamed, a type widened or changed, an
  enum value added, a subject removed or renamed, ...);
* a consumer change is **breaking for producers** when the new consumer schema rejects a message an
  existing (base) producer may send (a new required field producers do not send, a type narrowed, an enum
  value removed, ...);
* a consumer that starts receiving a subject no producer sends is **breaking for consumers** (it would
  receive nothing);
* a change whose effect on a counterparty cannot be decided (no counterexample found, no proof either) is
  **undecided** (``undecided`` is true): never reported as safe;
* everything else is safe (``breaking_for`` is ``None``).

Schema-level details come from comparing the two schemas keyword by keyword: they explain, they never
decide. Every changed message schema is decided with :func:`contracts.compat.is_compatible` (the engine
``check`` uses) against the actual counterparties in the base, or, when a channel has no counterparty in the
set, against the service's own base schema (a producer's new schema must fit in its old one, a consumer's
old schema in its new one). No keyword is safe by default.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal

from sagaproof.contracts._schema_util import _bound, _types
from sagaproof.contracts.check import finding_fields, relevant_messages
from sagaproof.contracts.compat import Verdict, is_compatible
from sagaproof.contracts.model import Channel, ContractSet, Message
from sagaproof.contracts.subjects import overlaps

__all__ = ["Change", "diff"]

BreakingFor = Literal["consumers", "producers"] | None
Direction = Literal["widen", "narrow", "change"]


@dataclass
class Change:
    """One classified contract change.

    ``path`` is a JSON pointer into the message payload schema (empty for subject-level changes).
    """

    kind: str
    subject: str
    path: str
    breaking_for: BreakingFor
    description: str
    service: str | None = None
    role: str | None = None  # "producer" | "consumer"
    message: str | None = None
    undecided: bool = False
    accepted: bool = False  # undecided on a channel listed in [contracts] accept_undecided
    compat: Verdict | None = None  # the engine's verdict that decided this change, when one did

    @property
    def breaking(self) -> bool:
        return self.breaking_for is not None

    @property
    def verdict(self) -> str:
        """``breaking``, ``undecided`` or ``safe``."""
        return "breaking" if self.breaking else "undecided" if self.undecided else "safe"

    def to_dict(self) -> dict[str, Any]:
        d = {"kind": self.kind, "subject": self.subject, "path": self.path, "breaking_for": self.breaking_for,
             "verdict": self.verdict, "description": self.description, "service": self.service,
             "role": self.role, "message": self.message, "accepted": self.accepted}
        if self.compat is not None:
            d.update(finding_fields(self.compat))
        return d


def _esc(tok: Any) -> str:
    return str(tok).replace("~", "~0").replace("/", "~1")


def _j(v: Any) -> str:
    return json.dumps(v, default=str)


def _num(v: Any) -> str:
    """A JSON Schema number as JSON writes it: 1, not 1.0; 0.5."""
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else _j(float(v))
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return _j(v)


def _bound_text(b: tuple[Fraction, bool] | None, name: str) -> str:
    if b is None:
        return f"no {name}"
    return f"{'exclusive ' if b[1] else ''}{_num(b[0])}"


def _kw(schema: dict[str, Any], key: str, absent: str) -> str:
    """The value of *key* in JSON (``null`` is the JSON null), or the words for an absent keyword."""
    return _num(schema[key]) if key in schema else absent


def _schema_changes(b: Any, h: Any, path: str = "") -> list[tuple[str, str, Direction, str]]:
    """Keyword-level differences between a base and a head schema: (kind, path, direction, description)."""
    if b == h:
        return []
    if not isinstance(b, dict) or not isinstance(h, dict):
        return [("schema-changed", path, "change", f"schema at '{path or '/'}' changed")]
    out: list[tuple[str, str, Direction, str]] = []
    for part in (_type_changes, _required_changes, _property_changes, _value_changes, _bound_changes,
                 _nested_changes):
        out += part(b, h, path)
    return out


def _type_changes(b: dict[str, Any], h: dict[str, Any], path: str) -> list[tuple[str, str, Direction, str]]:
    """The type keyword: widened, narrowed or changed."""
    out: list[tuple[str, str, Direction, str]] = []
    bt, ht = _types(b), _types(h)
    if bt != ht:
        def wide(ts: set[str] | None) -> set[str]:
            if ts is None:
                return {"any"}
            return ts | ({"integer"} if "number" in ts else set())
        where = f" of '{path or '/'}'"
        if ht is None or (bt is not None and wide(bt) <= wide(ht)):
            out.append(("type-widened", path, "widen", f"type{where} widened from {_kw(b, 'type', 'no type keyword')} "
                        f"to {_kw(h, 'type', 'no type keyword')}"))
        elif bt is None or wide(ht) <= wide(bt):
            out.append(("type-narrowed", path, "narrow", f"type{where} narrowed from {_kw(b, 'type', 'no type keyword')} "
                        f"to {_kw(h, 'type', 'no type keyword')}"))
        else:
            out.append(("type-changed", path, "change", f"type{where} changed from {_kw(b, 'type', 'no type keyword')} "
                        f"to {_kw(h, 'type', 'no type keyword')}"))
    return out


def _required_changes(b: dict[str, Any], h: dict[str, Any], path: str) -> list[tuple[str, str, Direction, str]]:
    """Required fields removed (perhaps renamed) or added."""
    out: list[tuple[str, str, Direction, str]] = []
    breq, hreq = b.get("required", []), h.get("required", [])
    for k in breq:
        if k not in hreq:
            renamed = [n for n in hreq if n not in breq]
            hint = f" (renamed to '{renamed[0]}'?)" if len(renamed) == 1 else ""
            out.append(("required-removed", f"{path}/required", "widen", f"required field '{k}' removed{hint}"))
    for k in hreq:
        if k not in breq:
            out.append(("required-added", f"{path}/required", "narrow", f"new required field '{k}'"))
    return out


def _property_changes(b: dict[str, Any], h: dict[str, Any], path: str) -> list[tuple[str, str, Direction, str]]:
    """Properties removed or added (each changed one compared in turn), and additionalProperties."""
    out: list[tuple[str, str, Direction, str]] = []
    bp, hp = b.get("properties", {}) or {}, h.get("properties", {}) or {}
    bap, hap = b.get("additionalProperties", True), h.get("additionalProperties", True)
    for k in bp:
        if k not in hp:
            d: Direction = "narrow" if hap is False else "widen"
            out.append(("property-removed", f"{path}/properties/{_esc(k)}", d, f"property '{k}' removed"))
    for k in hp:
        if k not in bp:
            d = "widen" if bap is False else "narrow"
            out.append(("property-added", f"{path}/properties/{_esc(k)}", d, f"property '{k}' added"))
        else:
            out += _schema_changes(bp[k], hp[k], f"{path}/properties/{_esc(k)}")
    if bap != hap:
        if bap is False or hap is True:
            out.append(("additional-properties", f"{path}/additionalProperties", "widen", "additional properties now allowed"))
        elif hap is False or bap is True:
            out.append(("additional-properties", f"{path}/additionalProperties", "narrow", "additional properties no longer allowed"))
        else:
            out += _schema_changes(bap, hap, f"{path}/additionalProperties")
    return out


def _value_changes(b: dict[str, Any], h: dict[str, Any], path: str) -> list[tuple[str, str, Direction, str]]:
    """The values allowed: enum, const and format."""
    out: list[tuple[str, str, Direction, str]] = []
    d: Direction
    if "enum" in b or "enum" in h:
        be, he = b.get("enum"), h.get("enum")
        if be is not None and he is not None:
            for v in be:
                if v not in he:
                    out.append(("enum-value-removed", f"{path}/enum", "narrow", f"enum value {_j(v)} removed"))
            for v in he:
                if v not in be:
                    out.append(("enum-value-added", f"{path}/enum", "widen", f"enum value {_j(v)} added"))
        elif be is None:
            out.append(("enum-added", f"{path}/enum", "narrow", f"values restricted to {_j(he)}"))
        else:
            out.append(("enum-removed", f"{path}/enum", "widen", "enum restriction removed"))
    if b.get("const", ...) != h.get("const", ...):
        out.append(("const-changed", f"{path}/const", "change",
                    f"const changed from {_kw(b, 'const', 'no const keyword')} to {_kw(h, 'const', 'no const keyword')}"))
    if b.get("format") != h.get("format"):
        d = "narrow" if "format" not in b else "widen" if "format" not in h else "change"
        out.append(("format-changed", f"{path}/format", d,
                    f"format changed from {_kw(b, 'format', 'no format keyword')} to {_kw(h, 'format', 'no format keyword')}"))
    return out


def _bound_changes(b: dict[str, Any], h: dict[str, Any], path: str) -> list[tuple[str, str, Direction, str]]:
    """Numeric bounds, and the bounds on lengths and item counts."""
    out: list[tuple[str, str, Direction, str]] = []
    d: Direction
    for lower in (True, False):
        bb, hb = _bound(b, lower), _bound(h, lower)
        if bb != hb:
            name = "minimum" if lower else "maximum"
            if bb is None or hb is None:
                d = "narrow" if bb is None else "widen"
            else:
                tighter = (hb[0] > bb[0]) if lower else (hb[0] < bb[0])
                d = "narrow" if tighter or (hb[0] == bb[0] and hb[1]) else "widen"
            out.append(("bound-changed", f"{path}/{name}", d,
                        f"{name} of '{path or '/'}' changed from {_bound_text(bb, name)} to {_bound_text(hb, name)}"))
    for lo, hi in (("minLength", "maxLength"), ("minItems", "maxItems")):
        for key, is_min in ((lo, True), (hi, False)):
            bv, hv = b.get(key), h.get(key)
            if bv != hv:
                if bv is None or hv is None:
                    d = "narrow" if bv is None else "widen"
                else:
                    d = "narrow" if (hv > bv) == is_min else "widen"
                out.append(("bound-changed", f"{path}/{key}", d, f"{key} of '{path or '/'}' changed from "
                            f"{_kw(b, key, f'no {key}')} to {_kw(h, key, f'no {key}')}"))
    return out


def _nested_changes(b: dict[str, Any], h: dict[str, Any], path: str) -> list[tuple[str, str, Direction, str]]:
    """Items (compared in turn), and the keywords compared only as a whole."""
    out: list[tuple[str, str, Direction, str]] = []
    if b.get("items") != h.get("items"):
        out += _schema_changes(b.get("items", True), h.get("items", True), f"{path}/items") \
            if isinstance(b.get("items", {}), dict) and isinstance(h.get("items", {}), dict) \
            else [("schema-changed", f"{path}/items", "change", f"items of '{path or '/'}' changed")]
    for key in ("anyOf", "oneOf", "allOf", "pattern", "multipleOf", "uniqueItems", "not"):
        if b.get(key) != h.get(key):
            out.append(("schema-changed", f"{path}/{key}", "change", f"{key} of '{path or '/'}' changed"))
    return out


def _related(cs: ContractSet, pattern: str) -> list[Channel]:
    return [ch for p, ch in cs.channels.items() if overlaps(p, pattern)]


def _union(msgs: list[Message]) -> Any:
    schemas = [m.payload for m in msgs]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _counter_check(role: str, pattern: str, svc: str, msg: Message, base: ContractSet,
                   max_examples: int, confirm: int = 10) -> tuple[str | None, str, Verdict | None]:
    """Does the head message break a base counterparty?

    Returns ``("breaking", why, verdict)``, ``("undecided", why, verdict)``, ``("safe", "", None)``, or
    ``(None, "", None)`` when there is no counterparty.
    """
    found = False
    undecided = ""
    uv: Verdict | None = None
    for ch in _related(base, pattern):
        if role == "producer":
            for csvc, cmsgs in ch.consumers.items():
                if csvc == svc:
                    continue
                if relevant_messages([msg], cmsgs, ch.subject != pattern) == [msg]:
                    found = True
                    v = is_compatible(msg.payload, _union(cmsgs), max_examples=max_examples, confirm_examples=confirm)
                    if v.status == "incompatible":
                        ex = f"; e.g. {_j(v.counterexample)}" if v.has_counterexample else ""
                        return "breaking", f"{csvc} (base) rejects it: {v.reason}{ex}", v
                    if v.status == "unknown" and not undecided:
                        undecided, uv = f"whether {csvc} (base) accepts it is undecided: {v.reason}", v
        else:
            for psvc, pmsgs in ch.producers.items():
                if psvc == svc:
                    continue
                for pm in relevant_messages(pmsgs, [msg], ch.subject != pattern):
                    found = True
                    v = is_compatible(pm.payload, msg.payload, max_examples=max_examples, confirm_examples=confirm)
                    if v.status == "incompatible":
                        ex = f"; e.g. {_j(v.counterexample)}" if v.has_counterexample else ""
                        return "breaking", f"{psvc} (base) sends {pm.name} it rejects: {v.reason}{ex}", v
                    if v.status == "unknown" and not undecided:
                        undecided = f"whether it accepts {pm.name} from {psvc} (base) is undecided: {v.reason}"
                        uv = v
    if undecided:
        return "undecided", undecided, uv
    return ("safe" if found else None), "", None


def _no_producer(base: ContractSet, head: ContractSet) -> list[Change]:
    """Consumers that start receiving a subject nobody in *head* sends on."""
    out = []
    for pat in sorted(head.channels):
        hch = head.channels[pat]
        bch = base.channels.get(pat)
        new = [svc for svc in sorted(hch.consumers) if bch is None or svc not in bch.consumers]
        if not new:
            continue
        if any(ch.producers for p, ch in head.channels.items() if overlaps(p, pat)):
            continue
        for svc in new:
            out.append(Change("no-producer", pat, "", "consumers",
                              f"{svc} now receives on {pat}, but no service sends on it: it would receive nothing",
                              svc, "consumer"))
    return out


def diff(base: ContractSet, head: ContractSet, *, max_examples: int = 60, confirm_examples: int = 0,
         accept_undecided: Iterable[str] = ()) -> list[Change]:
    """Classify every change from *base* to *head* (see the module docstring). Undecided changes on a channel
    in *accept_undecided* are marked ``accepted`` (they stay undecided, never safe).

    Example::

        changes = diff(load_at_git_ref(".", "origin/main", "contracts"), load_dir("contracts"))
        breaking = [c for c in changes if c.breaking]
    """
    changes: list[Change] = []
    added = [p for p in head.channels if p not in base.channels]
    for pat in sorted(base.channels):
        bch = base.channels[pat]
        hch = head.channels.get(pat)
        if hch is None:
            names = set(bch.messages)
            renamed = [p for p in added if names and set(head.channels[p].messages) == names]
            what = f"subject {pat} renamed to {renamed[0]}" if renamed else f"subject {pat} removed"
            kind = "subject-renamed" if renamed else "subject-removed"
            bf: BreakingFor = "consumers" if bch.consumers else None
            if bch.consumers:
                what += f"; its consumers ({', '.join(sorted(bch.consumers))}) would receive nothing"
            changes.append(Change(kind, pat, "", bf, what))
            continue
        for role, bside, hside in (("producer", bch.producers, hch.producers), ("consumer", bch.consumers, hch.consumers)):
            for svc in sorted(set(bside) | set(hside)):
                changes += _role_changes(role, pat, svc, bside.get(svc), hside.get(svc), bch, base, max_examples,
                                         confirm_examples)
    for pat in sorted(added):
        changes.append(Change("subject-added", pat, "", None, f"subject {pat} added"))
        hch = head.channels[pat]
        for svc, msgs in sorted(hch.producers.items()):
            for m in msgs:
                state, why, v = _counter_check("producer", pat, svc, m, base, max_examples, confirm_examples)
                if state in ("breaking", "undecided"):
                    changes.append(Change("producer-added", pat, "", "consumers" if state == "breaking" else None,
                                          f"{svc} now sends {m.name} on {pat}; {why}", svc, "producer", m.name,
                                          undecided=state == "undecided", compat=v))
    changes += _no_producer(base, head)
    accepted = set(accept_undecided)
    for c in changes:
        if c.undecided and c.subject in accepted:
            c.accepted = True
    return changes


def _role_changes(role: str, pat: str, svc: str, bmsgs: list[Message] | None, hmsgs: list[Message] | None,
                  bch: Channel, base: ContractSet, max_examples: int, confirm: int = 10) -> list[Change]:
    out: list[Change] = []
    other: BreakingFor = "consumers" if role == "producer" else "producers"
    verb = "sends" if role == "producer" else "receives"
    if hmsgs is None:
        # The service no longer sends/receives here.
        counter = bch.consumers if role == "producer" else {}
        bf: BreakingFor = "consumers" if counter and any(s != svc for s in counter) else None
        out.append(Change(f"{role}-removed", pat, "", bf, f"{svc} no longer {verb} on {pat}", svc, role))
        return out
    if bmsgs is None:
        bmsgs = []
        out.append(Change(f"{role}-added", pat, "", None, f"{svc} now {verb} on {pat}", svc, role))
    bnames = {m.name: m for m in bmsgs}
    hnames = {m.name: m for m in hmsgs}
    for name in bnames:
        if name not in hnames:
            if role == "producer":
                bf = "consumers" if any(s != svc for s in bch.consumers) else None
                out.append(Change("message-removed", pat, "", bf, f"{svc} no longer sends {name} on {pat}", svc, role, name))
            else:
                senders = [s for s, ms in bch.producers.items() if s != svc and any(x.name == name for x in ms)]
                bf = "producers" if senders else None
                out.append(Change("message-removed", pat, "", bf, f"{svc} no longer accepts {name} on {pat}", svc, role, name))
    for name, hm in hnames.items():
        bm = bnames.get(name)
        if bm is None:
            added, why, av = _counter_check(role, pat, svc, hm, base, max_examples, confirm)
            out.append(Change("message-added", pat, "", other if added == "breaking" else None,
                              f"{svc} now {verb} {name} on {pat}" + (f"; {why}" if why else ""), svc, role, name,
                              undecided=added == "undecided", compat=av))
            continue
        if bm.payload == hm.payload:
            continue
        # The classification explains; the engine decides. Every changed schema is decided with
        # is_compatible, whatever keywords changed (no keyword is safe by default).
        details = _schema_changes(bm.payload, hm.payload)
        # The risky direction for this role: producers must not widen, consumers must not narrow.
        risky: set[Direction] = {"widen", "change"} if role == "producer" else {"narrow", "change"}
        state, why, verdict = _counter_check(role, pat, svc, hm, base, max_examples, confirm)
        if state is None:
            # No counterparty in the set: compare with the service's own base schema.
            v = is_compatible(hm.payload, bm.payload, max_examples=max_examples, confirm_examples=0) \
                if role == "producer" else \
                is_compatible(bm.payload, hm.payload, max_examples=max_examples, confirm_examples=0)
            state = {"ok": "safe", "incompatible": "breaking"}.get(v.status, "undecided")
            why = "" if state == "safe" else v.reason
            verdict = None if state == "safe" else v
            if v.has_counterexample:
                why += f"; e.g. {_j(v.counterexample)}"
        for kind, path, direction, text in details:
            risky_here = direction in risky
            bf = other if state == "breaking" and risky_here else None
            desc = f"{svc} ({role}) {name}: {text}"
            if (bf or (state == "undecided" and risky_here)) and why:
                desc += f"; {why}"
            out.append(Change(kind, pat, path, bf, desc, svc, role, name,
                              undecided=state == "undecided" and risky_here,
                              compat=verdict if (bf or (state == "undecided" and risky_here)) else None))
        if state in ("breaking", "undecided") and not any(direction in risky for _, _, direction, _ in details):
            # The engine found a break (or could not decide) where no listed change looks risky.
            out.append(Change("schema-changed", pat, "", other if state == "breaking" else None,
                              f"{svc} ({role}) {name}: {why}", svc, role, name, undecided=state == "undecided",
                              compat=verdict))
    return out
