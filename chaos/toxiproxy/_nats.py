"""NATS-aware message toxics: drop, duplicate, delay or reorder single messages.

These toxics parse the NATS client protocol on a link (INFO, CONNECT, PUB, HPUB, SUB, UNSUB,
MSG, HMSG, PING, PONG, +OK, -ERR; a frame may be split over many TCP reads or many frames may
share one read) and act on whole message frames: PUB/HPUB on the upstream link (client to
server), MSG/HMSG on the downstream link. Only frames whose subject matches the NATS pattern in
the `subject` attribute (`*` one token, `>` the rest; empty means every subject) are
candidates; each candidate is hit with probability `probability` (drawn per message from the
server's seeded random source). Every other byte passes unchanged and frames are only ever
emitted whole, so the stream stays valid.

Types (attributes):
    nats_drop       subject, probability             the message is discarded
    nats_duplicate  subject, probability             the message is sent twice in a row
    nats_delay      subject, probability, delay (ms) the message is held back while later frames
                                                     pass (reordering)
    nats_reorder    subject, probability, delay (ms) the message is swapped with the next matching
                                                     message; if none comes within `delay` ms
                                                     (1000 when 0) it is sent as is
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from sagaproof.chaos.toxiproxy._link import TIMEOUT, Interrupted, Stub
from sagaproof.chaos.toxiproxy._toxics import AttrSpec, Runner, register

from sagaproof.subjects import matches

_MSG_OPS = {
    "upstream": (b"PUB", b"HPUB"),
    "downstream": (b"MSG", b"HMSG"),
}
_SIZED_OPS = (b"PUB", b"HPUB", b"MSG", b"HMSG")
# Longer control lines or bigger payloads than a NATS server accepts mean the stream is not NATS
# (or is corrupt): pass such bytes through instead of holding them while waiting for a frame end.
MAX_CONTROL_LINE = 4096
MAX_PAYLOAD = 64 * 1024 * 1024


def subject_matches(pattern: str, subject: str) -> bool:
    """True if a NATS subject matches a toxic's `subject` attribute; "" (the default) means every message."""
    return not pattern or matches(pattern, subject)


@dataclass(slots=True)
class Frame:
    """One complete protocol frame; `subject` is set for message frames of the link's direction."""

    data: bytes
    subject: str | None = None


@dataclass
class NatsParser:
    """Incremental splitter of a NATS byte stream into whole frames."""

    direction: str
    buf: bytearray = field(default_factory=bytearray)
    _need: int = 0  # bytes of the current sized frame, once its control line is known
    _subject: str | None = None

    def feed(self, data: bytes) -> list[Frame]:
        """Whole frames completed by `data` (bytes or a memoryview); a partial frame is kept in `buf`.

        Each frame's bytes are copied once, from one contiguous view of the unparsed input.
        """
        if self.buf:
            self.buf += data
            view = bytes(self.buf)
        else:
            view = data if type(data) is bytes else bytes(data)
        frames: list[Frame] = []
        append = frames.append
        find = view.find
        size_of = len(view)
        pos = 0
        need = self._need
        subject = self._subject
        ops = _MSG_OPS[self.direction]
        while True:
            if need:
                end = pos + need
                if size_of < end:
                    break
                append(Frame(view[pos:end], subject))
                pos = end
                need = 0
                subject = None
                continue
            nl = find(b"\n", pos, pos + MAX_CONTROL_LINE + 1)
            if nl < 0:
                if size_of - pos > MAX_CONTROL_LINE:
                    append(Frame(view[pos:]))
                    pos = size_of
                break
            line = view[pos : nl + 1]
            parts = line.split()
            op = parts[0].upper() if parts else b""
            if op in _SIZED_OPS and len(parts) >= 3:
                try:
                    size = int(parts[-1])
                except ValueError:
                    size = -1
                if 0 <= size <= MAX_PAYLOAD:
                    need = len(line) + size + 2
                    subject = parts[1].decode("utf-8", "replace") if op in ops else None
                    continue  # re-loop: collect the whole frame from pos
            append(Frame(line))
            pos = nl + 1
        self._need = need
        self._subject = subject
        self.buf = bytearray(view[pos:]) if pos < size_of else bytearray()
        return frames


@dataclass
class NatsState:
    """Per-link state that survives toxic restarts: parser and held-back messages."""

    parser: NatsParser
    held: list[tuple[float, bytes]] = field(default_factory=list)  # (due time, frame)


class _NatsToxic(Runner):
    attrs: ClassVar[tuple[AttrSpec, ...]] = (("subject", "string"), ("probability", "float"), ("delay", "int"))
    go_name = "NatsToxic"
    defaults: ClassVar[dict[str, Any]] = {"probability": 1.0}

    def new_state(self) -> Any:
        return None  # created lazily: the direction is known only from the stub

    def flush(self, state: Any) -> list[bytes]:
        if state is None:
            return []
        out = [frame for _due, frame in sorted(state.held, key=lambda h: h[0])]
        state.held.clear()
        if state.parser.buf:
            out.append(bytes(state.parser.buf))
            state.parser.buf.clear()
        return out

    def act(self, frame: Frame, state: NatsState, stub: Stub, out: list[bytes]) -> None:
        raise NotImplementedError

    def on_candidate(self, frame: Frame, state: NatsState, out: list[bytes]) -> bool:
        """Hook for matching frames that were not hit (reorder swaps with them)."""
        return False

    @staticmethod
    def _release(state: NatsState, now: float, ended: bool, out: list[bytes]) -> bool:
        """Send on the held frames that are due (all of them when the stream `ended`), in the order
        they fall due; whether there were any."""
        due = [h for h in state.held if h[0] <= now]
        if not due and not ended:
            return False
        release = state.held if ended else due
        release.sort(key=lambda h: h[0])
        state.held = [] if ended else [h for h in state.held if h[0] > now]
        out.extend(frame for _due, frame in release)
        return True

    async def run(self, stub: Stub) -> None:
        if stub.state is None:
            stub.state = NatsState(NatsParser(stub.direction))
        state: NatsState = stub.state
        pattern = self.a["subject"]
        probability = self.a["probability"]
        matching: dict[str, bool] = {}  # subject -> matches the pattern (subjects repeat)
        while True:
            timeout = None
            if state.held:
                timeout = max(0.0, min(due for due, _ in state.held) - stub.now())
            item = await stub.recv(timeout)
            now = stub.now()
            out: list[bytes] = []
            unchanged = False  # every byte of this chunk goes on as it came
            if item is not TIMEOUT and item is not None:
                data, stamp = item
                unchanged = not state.parser.buf
                for frame in state.parser.feed(data):
                    subject = frame.subject
                    if subject is not None:
                        hit = matching.get(subject)
                        if hit is None:
                            if len(matching) > 4096:
                                matching.clear()
                            hit = matching[subject] = subject_matches(pattern, subject)
                        if hit:
                            if stub.rng.random() < probability:
                                self.act(frame, state, stub, out)
                                unchanged = False
                                continue
                            if self.on_candidate(frame, state, out):
                                unchanged = False
                                continue
                    out.append(frame.data)
                if state.parser.buf:
                    unchanged = False
            if state.held and self._release(state, now, item is None, out):
                unchanged = False
            if item is None:
                if state.parser.buf:
                    out.append(bytes(state.parser.buf))
                    state.parser.buf.clear()
            if unchanged:
                await stub.send(item)  # type: ignore[arg-type]  # no copy when nothing was touched
            elif out:
                await stub.send((b"".join(out), now))
            if item is None:
                await stub.send(None)
                return
            if stub.interrupted:
                raise Interrupted


class NatsDrop(_NatsToxic):
    go_name = "NatsDropToxic"
    attrs = (("subject", "string"), ("probability", "float"))

    def act(self, frame: Frame, state: NatsState, stub: Stub, out: list[bytes]) -> None:
        return None


class NatsDuplicate(_NatsToxic):
    go_name = "NatsDuplicateToxic"
    attrs = (("subject", "string"), ("probability", "float"))

    def act(self, frame: Frame, state: NatsState, stub: Stub, out: list[bytes]) -> None:
        out.append(frame.data)
        out.append(frame.data)


class NatsDelay(_NatsToxic):
    go_name = "NatsDelayToxic"

    def act(self, frame: Frame, state: NatsState, stub: Stub, out: list[bytes]) -> None:
        state.held.append((stub.now() + max(0, self.a["delay"]) / 1000.0, frame.data))


class NatsReorder(_NatsToxic):
    go_name = "NatsReorderToxic"

    def _release_swapped(self, frame: Frame, state: NatsState, out: list[bytes]) -> bool:
        if not state.held:
            return False
        out.append(frame.data)
        out.extend(held for _due, held in state.held)
        state.held.clear()
        return True

    def act(self, frame: Frame, state: NatsState, stub: Stub, out: list[bytes]) -> None:
        if self._release_swapped(frame, state, out):
            return
        hold_ms = self.a["delay"] if self.a["delay"] > 0 else 1000
        state.held.append((stub.now() + hold_ms / 1000.0, frame.data))

    def on_candidate(self, frame: Frame, state: NatsState, out: list[bytes]) -> bool:
        return self._release_swapped(frame, state, out)


for _name, _cls in (
    ("nats_drop", NatsDrop),
    ("nats_duplicate", NatsDuplicate),
    ("nats_delay", NatsDelay),
    ("nats_reorder", NatsReorder),
):
    register(_name, _cls)
