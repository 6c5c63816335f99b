"""Message-keyed fault windows: faults aimed at one delivery (the n-th first delivery of subject S on a link).

A random fault lands wherever the clock puts it, so whether it hits the few milliseconds in which a consumer's
bug shows is luck. A *window* is keyed by the message instead: "the 3rd first delivery of ``orders.created`` to
this service", and acts at the protocol moment where the bug lives:

``redeliver``         the service's ``+ACK`` for that delivery is dropped on the link (its work and its outcome
                      pass); the server redelivers it after the consumer's ack wait
``crash_after_ack``   the ``+ACK`` passes, and from that frame on nothing more the service sends passes; the
                      owner is told to kill the process (so an outcome published after the ack never arrives)
``crash_before_ack``  the ``+ACK`` and everything after it are withheld; the owner is told to kill the process
                      (its outcome, published before the ack, has passed)
``duplicate``         the delivery is passed twice (same ack subject, same body)
``reconnect``         the delivery passes; the owner is told to cut the link for longer than the client needs
                      to notice
``broker_restart``    the delivery passes; the owner is told to restart the broker
``late``              a window on what the service publishes, not on a delivery: from the ``nth`` distinct message
                      it publishes on ``subject``, everything the service sends on that connection (in order: TCP
                      never reorders a connection's bytes) is held for ``hold`` seconds (``Window.extra["hold"]``),
                      then passed; a re-publication of the same body on another connection meanwhile is held as
                      long. A step that answers too late (``"late"`` when it is first held, ``"released"`` when it
                      passes or its connection ends)

Both directions of a proxy carry a ``nats_windows`` toxic naming the same plan (attribute ``plan``): a
:class:`WindowPlan` registered in this process with :func:`register_plan`. The plan counts first deliveries
(``$JS.ACK`` reply with delivered = 1) per subject across the link's connections, remembers which ack subject
each armed window took, and calls ``on_fire(window, stage)`` (from the proxy's event loop; it must not block)
when a window takes its delivery (``"delivered"``), when the ack it waits for is reached (``"ack"``), and when
the server redelivers the message (``"redelivered"``). The owner may put a window that took its delivery back
(:meth:`WindowPlan.rearm`: the service was busy with another fault, or its ack never came), and it then takes
the next first delivery of its subject. Plans live in the proxy's process, so the toxic works on the embedded
server only; a toxic naming no registered plan passes every byte.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sagaproof.chaos.toxiproxy._link import TIMEOUT, Interrupted, Stub
from sagaproof.chaos.toxiproxy._nats import NatsParser, subject_matches
from sagaproof.chaos.toxiproxy._toxics import Runner, register

__all__ = ["WINDOW_KINDS", "Window", "WindowPlan", "register_plan", "unregister_plan"]

WINDOW_KINDS = ("redeliver", "crash_after_ack", "crash_before_ack", "duplicate", "reconnect", "broker_restart",
                "late")
_ACK_WINDOWS = ("redeliver", "crash_after_ack", "crash_before_ack")
BLACKHOLE_LIMIT = 15.0  # seconds a connection's outgoing bytes are withheld waiting for the kill, at most


@dataclass
class Window:
    """One aimed fault: ``kind`` on the ``nth`` first delivery of ``subject`` on this link."""

    id: str
    kind: str
    subject: str
    nth: int
    state: str = "armed"  # armed -> delivered -> acted (ack reached) ; redelivered is noted apart
    ack: bytes | None = None  # the ack subject of the delivery it took
    stream_seq: bytes | None = None
    payload: bytes = b""
    redelivered: bool = False
    rearmed: int = 0  # times it was put back to take a later delivery
    extra: dict[str, Any] = field(default_factory=dict)
    conn: object = field(default=None, repr=False, compare=False)  # the link connection the delivery went down


OnFire = Callable[[Window, str], None]


class WindowPlan:
    """The windows of one link, shared by its two directions (and by every connection the service opens)."""

    def __init__(self, windows: list[Window], on_fire: OnFire | None = None) -> None:
        self.windows = list(windows)
        self.on_fire = on_fire
        self.counts: dict[str, int] = {}
        self._armed: dict[tuple[str, int], Window] = {(w.subject, w.nth): w for w in self.windows if w.kind != "late"}
        self._patterns = sorted({w.subject for w in self.windows if w.kind != "late"})
        self.late = [w for w in self.windows if w.kind == "late"]  # windows on what the service publishes
        self.published: dict[str, int] = {}  # distinct bodies published per late window's subject
        self._bodies: dict[str, set[int]] = {}
        self._matching: dict[str, list[str]] = {}  # subject -> the window patterns it matches
        self._by_ack: dict[bytes, Window] = {}
        self._by_seq: dict[tuple[bytes, bytes], Window] = {}  # (consumer token, stream seq) -> window, redelivery
        self.lock = threading.Lock()
        self.last_delivery = time.monotonic()  # when the link last carried a first delivery (any subject)

    def _fire(self, window: Window, stage: str) -> None:
        if self.on_fire is not None:
            try:
                self.on_fire(window, stage)
            except Exception:  # noqa: BLE001 - the owner's bug must not wedge the link
                pass

    def _patterns_of(self, subject: str) -> list[str]:
        got = self._matching.get(subject)
        if got is None:
            got = self._matching[subject] = [p for p in self._patterns if subject_matches(p, subject)]
        return got

    def delivery(self, subject: str, reply: bytes, payload: bytes, conn: object = None) -> int:
        """A JetStream delivery passing down (on link connection `conn`): how many times to send it (0, 1 or 2)."""
        t = reply.split(b".")
        n = len(t)
        if n not in (9, 11, 12) or t[1] != b"ACK":
            return 1
        b = 2 if n == 9 else 4
        consumer, delivered, stream_seq = t[b + 1], t[b + 2], t[b + 3]
        self.last_delivery = time.monotonic()
        if delivered != b"1":
            w = self._by_seq.get((consumer, stream_seq))
            if w is not None and not w.redelivered:
                w.redelivered = True
                self._fire(w, "redelivered")
            return 1
        with self.lock:
            hits = []
            for pattern in self._patterns_of(subject):
                count = self.counts[pattern] = self.counts.get(pattern, 0) + 1
                hit = self._armed.pop((pattern, count), None)
                if hit is not None:
                    hits.append(hit)
            for other in hits[1:]:  # two windows on one delivery: the later ones take the next one
                self._arm_after(other, other.nth)
            if not hits:
                return 1
            w = hits[0]
            w.extra["subject"] = subject
            w.state = "delivered"
            w.ack = reply
            w.stream_seq = stream_seq
            w.payload = payload
            w.conn = conn
            self._by_seq[(consumer, stream_seq)] = w
            if w.kind in _ACK_WINDOWS:
                self._by_ack[reply] = w
        self._fire(w, "delivered")
        return 2 if w.kind == "duplicate" else 1

    def _arm_after(self, window: Window, nth: int) -> None:
        nth += 1
        while (window.subject, nth) in self._armed:
            nth += 1
        window.nth = nth
        window.state = "armed"
        self._armed[(window.subject, nth)] = window

    def rearm(self, window: Window) -> bool:
        """Put a window that took its delivery back, to take the next first delivery of its subject; False (and
        nothing changes) when it has moved on meanwhile (its ack came)."""
        with self.lock:
            if window.state != "delivered":
                return False
            if window.ack is not None:
                self._by_ack.pop(window.ack, None)
            if window.stream_seq is not None:
                for key, other in list(self._by_seq.items()):
                    if other is window:
                        del self._by_seq[key]
            window.ack = window.stream_seq = window.conn = None
            window.payload = b""
            window.redelivered = False
            window.extra.pop("subject", None)
            window.rearmed += 1
            self._arm_after(window, max(window.nth, self.counts.get(window.subject, 0)))
            return True

    def publish(self, subject: str, body: bytes, now: float) -> float | None:
        """A message the service publishes, passing up: until when (``now``'s clock) to hold it, or None."""
        with self.lock:
            due = None
            for w in self.late:
                if not subject_matches(w.subject, subject):
                    continue
                if w.state == "held":
                    if body == w.payload and now < float(w.extra["until"]):
                        due = float(w.extra["until"])  # a retry of the held message: held as long
                    continue
                if w.state != "armed":
                    continue
                seen = self._bodies.setdefault(w.subject, set())
                h = hash(body)
                if h in seen:
                    continue
                seen.add(h)
                self.published[w.subject] = self.published.get(w.subject, 0) + 1
                if self.published[w.subject] == w.nth:
                    w.state, w.payload = "held", body
                    w.extra.update(subject=subject, until=now + float(w.extra.get("hold", 0.0)))
                    due = float(w.extra["until"])
                    hit = w
                    break
            else:
                hit = None
        if hit is not None:
            self._fire(hit, "late")
        return due

    def released(self, body: bytes) -> None:
        """The held message ``body`` passed (or its connection ended): its window is over."""
        with self.lock:
            done = [w for w in self.late if w.state == "held" and w.payload == body]
            for w in done:
                w.state = "acted"
        for w in done:
            self._fire(w, "released")

    def answer(self, ack_subject: bytes, payload: bytes, conn: object = None) -> str:
        """The service's answer on an ack subject passing up (on link connection `conn`): ``pass``, ``drop``,
        ``pass_then_hold`` or ``hold`` (hold: this frame and everything after it on this connection is withheld
        until it closes).

        A crash-after-ack window does not take an ack that comes on a later connection than its delivery: the
        service reconnected in between, so its client kept the ack through the outage while the work went on,
        and a kill now comes long after any commit. It passes, and the window waits for its owner to put it
        back (the ack is overdue for it) to take a later delivery."""
        w = self._by_ack.get(ack_subject)
        if w is None:
            return "pass"
        p = payload.strip()
        if p and not p.startswith(b"+ACK"):
            return "pass"  # a nak or a progress note: the window waits for the acknowledgement
        with self.lock:
            if self._by_ack.pop(ack_subject, None) is not w or w.state != "delivered":
                return "pass"  # put back meanwhile (its owner gave up waiting for this ack)
            if w.kind == "crash_after_ack" and conn is not None and w.conn is not None and conn is not w.conn:
                w.extra["ack_elsewhere"] = int(w.extra.get("ack_elsewhere", 0)) + 1
                return "pass"
            w.state = "acted"
        self._fire(w, "ack")
        return {"redeliver": "drop", "crash_after_ack": "pass_then_hold", "crash_before_ack": "hold"}[w.kind]


PLANS: dict[str, WindowPlan] = {}
_PLANS_LOCK = threading.Lock()


def register_plan(name: str, plan: WindowPlan) -> None:
    """Make ``plan`` the one ``nats_windows`` toxics with ``plan = name`` act on."""
    with _PLANS_LOCK:
        PLANS[name] = plan


def unregister_plan(name: str) -> None:
    with _PLANS_LOCK:
        PLANS.pop(name, None)


@dataclass
class _LinkState:
    parser: NatsParser
    hold_since: float | None = None  # withholding everything since (loop time)
    late_until: float | None = None  # holding everything sent, from a late window's message on, until then
    late_frames: list[bytes] = field(default_factory=list)
    late_body: bytes = b""


def _control(data: bytes) -> tuple[list[bytes], bytes]:
    nl = data.find(b"\r\n")
    line = data[:nl] if nl >= 0 else data
    body = data[nl + 2:-2] if nl >= 0 else b""
    return line.split(), body


class NatsWindows(Runner):
    """The link side of a :class:`WindowPlan` (attribute ``plan``: its registered name)."""

    attrs: ClassVar[tuple[tuple[str, str], ...]] = (("plan", "string"),)
    go_name = "NatsWindowsToxic"

    def flush(self, state: Any) -> list[bytes]:
        if state is None:
            return []
        out = list(state.late_frames)
        state.late_frames.clear()
        state.late_until = None
        if state.parser.buf and state.hold_since is None:
            out.append(bytes(state.parser.buf))
            state.parser.buf.clear()
        return out

    @staticmethod
    async def _release(stub: Stub, state: _LinkState, plan: WindowPlan | None, *, lost: bool = False) -> None:
        """Pass what a late window held (drop it: ``lost``, the connection ended); its window is over."""
        frames, body = state.late_frames, state.late_body
        state.late_frames, state.late_until, state.late_body = [], None, b""
        if plan is not None:  # first: once sent, what it held may be read before this loop runs again
            plan.released(body)
        if frames and not lost:
            await stub.send((b"".join(frames), stub.now()))

    def _frames(self, stub: Stub, state: _LinkState, plan: Any, data: bytes) -> tuple[list[bytes], bool]:
        """What to send on for one chunk, frame by frame, and whether that is the chunk unchanged."""
        unchanged = not state.parser.buf
        out: list[bytes] = []
        down = stub.direction == "downstream"
        for frame in state.parser.feed(data):
            if state.hold_since is not None:
                unchanged = False
                continue
            if state.late_until is not None:  # a late window holds this connection's sending
                state.late_frames.append(frame.data)
                unchanged = False
                continue
            if frame.subject is None:
                out.append(frame.data)
                continue
            if down:
                unchanged = self._delivery(plan, frame, out, stub.conn) and unchanged
            else:
                unchanged = self._sent(stub, state, plan, frame, out) and unchanged
        if state.parser.buf:
            unchanged = False
        return out, unchanged

    @staticmethod
    def _delivery(plan: Any, frame: Any, out: list[bytes], conn: object) -> bool:
        """A message delivered to the service: passed on once, or as often as the plan says (a
        redelivery window); whether it went on once, unchanged."""
        parts, body = _control(frame.data)
        reply = parts[3] if (len(parts) == 5 and parts[0] == b"MSG") or \
            (len(parts) == 6 and parts[0] == b"HMSG") else b""
        if len(parts) == 6 and parts[4].isdigit():
            body = body[int(parts[4]):]  # HMSG: the headers first, then the body
        times = plan.delivery(frame.subject, reply, body, conn) if reply.startswith(b"$JS.ACK.") else 1
        out.extend([frame.data] * times)
        return times == 1

    @staticmethod
    def _sent(stub: Stub, state: _LinkState, plan: Any, frame: Any, out: list[bytes]) -> bool:
        """A frame the service sends: a publish (which may open a late window) or an acknowledgement
        (which the plan may hold); whether it went on unchanged."""
        subject = frame.subject
        if not subject.startswith("$JS.ACK."):
            if plan.late and not subject.startswith(("$JS.API.", "_INBOX.")):
                parts, body = _control(frame.data)
                if len(parts) >= 5 and parts[0] == b"HPUB" and parts[-2].isdigit():
                    body = body[int(parts[-2]):]  # HPUB: the headers first, then the body
                until = plan.publish(subject, body, stub.now())
                if until is not None:
                    state.late_until, state.late_body, state.late_frames = until, body, [frame.data]
                    return False
            out.append(frame.data)
            return True
        parts, body = _control(frame.data)
        action = plan.answer(parts[1], body, stub.conn)
        if action == "pass":
            out.append(frame.data)
            return True
        if action == "pass_then_hold":
            out.append(frame.data)
        if action in ("hold", "pass_then_hold"):
            state.hold_since = stub.now()
        return False

    async def run(self, stub: Stub) -> None:
        plan = PLANS.get(self.a["plan"])
        if stub.state is None:
            stub.state = _LinkState(NatsParser(stub.direction))
        state: _LinkState = stub.state
        while True:
            if state.late_until is not None:
                got = await stub.recv(max(0.0, state.late_until - stub.now()))
                if got is TIMEOUT:
                    await self._release(stub, state, plan)
                    continue
                item = got
            else:
                item = await stub.recv()
            if item is None:
                if state.late_until is not None:  # the connection ends: what it held is lost with it
                    await self._release(stub, state, plan, lost=True)
                if state.parser.buf and state.hold_since is None:
                    await stub.send((bytes(state.parser.buf), stub.now()))
                    state.parser.buf.clear()
                await stub.send(None)
                return
            data, stamp = item
            if plan is None:
                await stub.send(item)
                continue
            if state.hold_since is not None and stub.now() - state.hold_since < BLACKHOLE_LIMIT:
                state.parser.feed(data)  # keep the frame boundaries; withhold the bytes
                continue
            state.hold_since = None
            if state.late_until is not None and stub.now() >= state.late_until:
                await self._release(stub, state, plan)
            out, unchanged = self._frames(stub, state, plan, data)
            if unchanged:
                await stub.send(item)
            elif out:
                await stub.send((b"".join(out), stamp))
            if stub.interrupted:
                raise Interrupted


register("nats_windows", NatsWindows)
