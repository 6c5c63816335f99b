"""Observing a service's NATS connection on its link (chaos.observe), against the pinned nats-server and nats-py.

Each test also pins one fact of ../shared/reference/nats-observation.md that the observation relies on: the
consumer-create request nats-py sends, the ack subject's layout, what each answer looks like on the wire,
the advisories' subjects, and the monitoring endpoints' fields.
"""

from __future__ import annotations

import asyncio
import json
import random
import urllib.request
from typing import Any

import nats
from chaos_testkit import Env, NatsServer
from nats.js.api import AckPolicy, ConsumerConfig, StreamConfig
from sagaproof.chaos.observe import WireObserver, attach, parse_ack_subject


def observed(env: Env, nats_server: NatsServer, name: str = "svc") -> tuple[str, WireObserver]:
    host, port = env.proxy(name, upstream=nats_server.addr)
    observer = WireObserver(name)
    observer.seen = []  # type: ignore[attr-defined]
    attach(env.server.proxies.get(name), observer)
    return f"nats://{host}:{port}", observer


def kinds(observer: WireObserver, kind: str) -> list[dict[str, Any]]:
    observer.seen.extend(observer.drain())  # type: ignore[attr-defined]
    return [e for e in observer.seen if e["kind"] == kind]  # type: ignore[attr-defined]


async def until(cond: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def test_ack_subject_layouts() -> None:
    nine = parse_ack_subject("$JS.ACK.SHOP.order.2.17.40.1700000000000000000.3")
    assert nine == {"stream": "SHOP", "consumer": "order", "delivered": 2, "stream_seq": 17, "consumer_seq": 40,
                    "pending": 3}
    twelve = parse_ack_subject("$JS.ACK._.ACCHASH.SHOP.order.1.5.6.1700000000000000000.0.rnd")
    assert twelve is not None and (twelve["stream"], twelve["stream_seq"], twelve["delivered"]) == ("SHOP", 5, 1)
    assert parse_ack_subject("_INBOX.abc.def") is None
    assert parse_ack_subject("$JS.ACK.SHOP.order.x.1.1.1.1") is None


_HDR = b"NATS/1.0\r\nNats-Msg-Id: a\r\n\r\n"
_STATUS = b"NATS/1.0 404 No Messages\r\n\r\n"
_CREATE = json.dumps({"stream_name": "S", "config": {"durable_name": "c", "ack_policy": "explicit",
                                                      "ack_wait": 2_000_000_000, "filter_subject": "orders.a"}}).encode()
# What a service sent (upstream) and got (downstream), in the order they passed; every kind of frame the observer
# reads, each fast path (a run of one core line, remembered lines, the delivery and answer expressions) and what
# they hand over to the general reading (12-token ack subjects, headers, a reply subject, tabs, lower case).
_TRAFFIC: list[tuple[str, bytes]] = [
    ("up", b'CONNECT {"name":"svc","user":"u","lang":"python3","version":"2.16.0"}\r\nPING\r\n'),
    ("down", b"INFO {\"server_id\":\"x\"}\r\nPONG\r\n"),
    ("up", b"SUB orders.core workers 1\r\nSUB _INBOX.abc.* 2\r\nSUB orders.b 3\r\nUNSUB 3 5\r\n"),
    ("up", b"PUB $JS.API.CONSUMER.DURABLE.CREATE.S.c _INBOX.abc.1 %d\r\n%s\r\n" % (len(_CREATE), _CREATE)),
    ("down", b"MSG _INBOX.abc.1 2 5\r\n{...}\r\n"),
    ("up", b"PUB $JS.API.CONSUMER.MSG.NEXT.S.c _INBOX.abc.2 11\r\n{\"batch\":5}\r\n"),
    ("down", b"".join(b"MSG orders.core 1 7\r\nabc\r\nde\r\n" for _ in range(5))  # a run; a payload with CRLF
     + b"MSG orders.other 1 0\r\n\r\nMSG orders.core 1 7\r\nMSG x 1\r\n"  # a payload that looks like a frame
     + b"MSG orders.core 1 _INBOX.reply.1 2\r\nhi\r\nmsg orders.core 1 2\r\nok\r\n"
     + b"MSG orders.a 4 $JS.ACK.S.c.1.1.1.1700000000000000000.4 3\r\nabc\r\n"
     + b"HMSG orders.b 4 $JS.ACK.S.c.1.2.2.1700000000000000001.3 %d %d\r\n%sxyz\r\n" % (len(_HDR), len(_HDR) + 3, _HDR)
     + b"MSG orders.a 4 $JS.ACK._.HASH.S.c.1.3.3.1700000000000000002.2.rnd 1\r\nx\r\n"
     + b"MSG\torders.a 4 $JS.ACK.S.c.1.4.4.1700000000000000003.1 1\r\ny\r\n"
     + b"MSG orders.b 4 $JS.ACK.S.c.1.5.5.1700000000000000004.0 1\r\nz\r\n"
     + b"HMSG _INBOX.abc.2 2 %d %d\r\n%s\r\n" % (len(_STATUS), len(_STATUS), _STATUS)),
    ("up", b"PUB $JS.ACK.S.c.1.1.1.1700000000000000000.4  0\r\n\r\n"
     b"PUB $JS.ACK.S.c.1.2.2.1700000000000000001.3 4\r\n-NAK\r\n"
     b"PUB $JS.ACK._.HASH.S.c.1.3.3.1700000000000000002.2.rnd 4\r\n+WPI\r\n"
     b"PUB $JS.ACK.S.c.1.4.4.1700000000000000003.1 _INBOX.abc.3 4\r\n+ACK\r\n"
     b"HPUB $JS.ACK.S.c.1.5.5.1700000000000000004.0 %d %d\r\n%s+TERM no good\r\n" % (len(_HDR), len(_HDR) + 13, _HDR)),
    ("down", b"MSG orders.b 4 $JS.ACK.S.c.2.2.6.1700000000000000005.0 3\r\nabc\r\nPING\r\n"),
    ("up", b"PUB orders.out 2\r\nhi\r\nPUB orders.out 2\r\nho\r\nPUB orders.out _INBOX.abc.9 2\r\nhu\r\n"
     b"PUB $JS.ACK.S.c.2.2.6.1700000000000000005.0 4\r\n+NXT\r\nPONG\r\n"),
]


def _observe(traffic: list[tuple[str, bytes, float]]) -> tuple[list[dict[str, Any]], dict[str, int],
                                                                 dict[Any, int], list[bool]]:
    """Feed (direction, bytes, wall) straight to one connection's readers (no link, no loop needed for that)."""
    observer = WireObserver("svc")
    conn = observer.open_connection()
    active = []
    for direction, chunk, wall in traffic:
        observer.clock = wall
        active.append((conn.up if direction == "up" else conn.down).feed(chunk))
    assert not conn.up.broken and not conn.down.broken
    return observer.drain(), observer.core_counts(), observer.held(), active


def _chunks(cuts: list[int] | None = None) -> list[tuple[str, bytes, float]]:
    """The traffic as it passed (chunk i stamped i), or with every chunk cut again where a cut falls (positions
    in the bytes of its direction): pieces keep their chunk's stamp and order."""
    out = []
    offset = {"up": 0, "down": 0}
    for i, (direction, chunk) in enumerate(_TRAFFIC):
        start = offset[direction]
        offset[direction] += len(chunk)
        inner = sorted({c - start for c in cuts or () if start < c < start + len(chunk)})
        for a, b in zip([0, *inner], [*inner, len(chunk)], strict=True):
            out.append((direction, chunk[a:b], float(i)))
    return out


def test_every_frame_is_read_as_it_should_be() -> None:
    events, core, held, active = _observe(_chunks())
    by = {k: [e for e in events if e["kind"] == k] for k in {e["kind"] for e in events}}
    assert [(e["name"], e["user"]) for e in by["nats_connect"]] == [("svc", "u")]
    assert [(e["subject"], e["queue"], e["sid"]) for e in by["nats_sub"]] == [
        ("orders.core", "workers", "1"), ("_INBOX.abc.*", None, "2"), ("orders.b", None, "3")]
    assert [(e["sid"], e["max"]) for e in by["nats_unsub"]] == [("3", 5)]
    (created,) = by["js_consumer"]
    assert (created["stream"], created["consumer"], created["filter_subjects"], created["ack_wait"]) == (
        "S", "c", ["orders.a"], 2.0)
    assert [(d["subject"], d["sid"], d["stream_seq"], d["delivered"], d["consumer_seq"], d["pending"], d["wall"])
            for d in by["delivery"]] == [
        ("orders.a", "4", 1, 1, 1, 4, 6.0), ("orders.b", "4", 2, 1, 2, 3, 6.0), ("orders.a", "4", 3, 1, 3, 2, 6.0),
        ("orders.a", "4", 4, 1, 4, 1, 6.0), ("orders.b", "4", 5, 1, 5, 0, 6.0), ("orders.b", "4", 2, 2, 6, 0, 8.0)]
    assert [(a["how"], a["stream_seq"], a["delivered"], a.get("reason"), a["wall"]) for a in by["ack"]] == [
        ("ack", 1, 1, None, 7.0), ("nak", 2, 1, None, 7.0), ("wpi", 3, 1, None, 7.0), ("ack", 4, 1, None, 7.0),
        ("term", 5, 1, "no good", 7.0), ("next", 2, 2, None, 9.0)]
    # "msg" in lower case is a core message too; the inbox and the status are not counted; the frame-like
    # payload is not a frame
    assert core == {"orders.core": 8, "orders.other": 1}
    assert held == {("S", "c", 3): 1}  # +WPI: still held; everything else was answered
    assert active == [True, False, True, True, True, False, True, True, True, True]


def test_only_the_latest_delivery_of_a_message_is_held() -> None:
    """A message delivered again (its ack wait ran out) is owed one answer, to its latest delivery: once the two
    deliveries are drained, the older one is let go, whether the newer one was answered or not."""
    def delivery(n: int, seq: int) -> bytes:
        return b"MSG orders.a 4 $JS.ACK.S.c.%d.%d.%d.170000000000000000%d.0 1\r\nx\r\n" % (n, seq, seq + n, n)

    def answer(n: int, seq: int, body: bytes = b"") -> bytes:
        return b"PUB $JS.ACK.S.c.%d.%d.%d.170000000000000000%d.0 %d\r\n%s\r\n" % (n, seq, seq + n, n, len(body), body)

    observer = WireObserver("svc")
    conn = observer.open_connection()
    other = b"$JS.ACK.S.d.1.9.1.1700000000000000009.0"  # another consumer's delivery, answered
    conn.down.feed(delivery(1, 7) + b"MSG orders.b 5 %s 1\r\ny\r\n" % other + delivery(1, 8))
    conn.up.feed(b"PUB %s 0\r\n\r\n" % other)
    observer.drain()
    assert observer.held() == {("S", "c", 7): 1, ("S", "c", 8): 1}
    assert observer.delivering_consumers() == {("S", "c"), ("S", "d")}
    conn.down.feed(delivery(2, 7) + delivery(2, 8))  # both delivered again; only the second one is answered
    conn.up.feed(answer(2, 8))
    assert observer.held() == {("S", "c", 7): 2, ("S", "c", 8): 1}  # seq 8's first delivery waits for a drain
    observer.drain()
    assert observer.held() == {("S", "c", 7): 2}
    conn.up.feed(answer(2, 7, b"+WPI"))  # in progress: still owed
    observer.drain()
    assert observer.held() == {("S", "c", 7): 2}
    conn.down.feed(delivery(3, 7))
    conn.up.feed(answer(3, 7, b"+ACK"))
    observer.drain()
    assert observer.held() == {}


def test_frames_read_the_same_however_the_bytes_are_cut() -> None:
    whole = _observe(_chunks())
    longest = max(sum(len(c) for d, c in _TRAFFIC if d == x) for x in ("up", "down"))
    for cut in range(1, longest):  # one more cut, at every byte boundary of both directions
        assert _observe(_chunks([cut]))[:3] == whole[:3], cut
    every = _observe(_chunks(list(range(1, longest))))  # every byte on its own
    assert every[:3] == whole[:3]
    rng = random.Random(7)
    for _ in range(300):
        cuts = [rng.randrange(1, longest) for _ in range(rng.randint(2, 40))]
        assert _observe(_chunks(cuts))[:3] == whole[:3], cuts


def test_a_run_of_one_core_line_is_counted_across_chunks() -> None:
    frame = b"MSG bench.flow 1 1024\r\n" + b"x" * 1024 + b"\r\n"
    stream = frame * 300 + b"MSG bench.other 1 3\r\nabc\r\n" + frame * 7
    observer = WireObserver("svc")
    conn = observer.open_connection()
    for start in range(0, len(stream), 32 * 1024 + 5):
        conn.down.feed(stream[start:start + 32 * 1024 + 5])
    assert observer.core_counts() == {"bench.flow": 307, "bench.other": 1}


def test_scanner_gives_up_on_a_stream_that_is_not_nats() -> None:
    conn = WireObserver("svc").open_connection()
    for scanner in (conn.up, conn.down):
        assert scanner.feed(b"x" * 5000) and scanner.broken
        assert scanner.feed(b"MSG a 1 1\r\nx\r\n"), "given up for good"
    conn = WireObserver("svc").open_connection()
    for scanner in (conn.up, conn.down):
        scanner.feed(b"x" * 3000)
        assert not scanner.broken  # a control line may be that long yet
        assert scanner.feed(b"x" * 2000) and scanner.broken
    conn = WireObserver("svc").open_connection()
    assert conn.down.feed(b"MSG a 1 -5\r\n") and conn.down.broken  # a negative size


def test_subscriptions_consumer_config_deliveries_and_answers(env: Env, nats_server: NatsServer) -> None:
    """The facts: nats-py creates a durable with $JS.API.CONSUMER.DURABLE.CREATE.<stream>.<durable> and the
    config as JSON (ack_wait in ns); deliveries carry the 9-token ack subject; +ACK goes out as an empty
    payload, -NAK, +WPI, +TERM as text; a redelivery has delivered > 1."""
    url, observer = observed(env, nats_server)

    async def body() -> None:
        admin = await nats.connect(f"nats://{nats_server.addr}")
        js = admin.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["orders.>"]))
        nc = await nats.connect(url, name="svc")
        sjs = nc.jetstream()
        await sjs.add_consumer("S", ConsumerConfig(durable_name="svc", ack_policy=AckPolicy.EXPLICIT, ack_wait=1.5,
                                                   max_deliver=3, filter_subjects=["orders.a", "orders.b"]))
        sub = await sjs.pull_subscribe_bind(consumer="svc", stream="S")

        async def ignore(_msg: Any) -> None:
            return None

        await nc.subscribe("orders.core", queue="workers", cb=ignore)
        for i in range(4):
            await js.publish("orders.a" if i % 2 == 0 else "orders.b", b'{"i":%d}' % i)
        await js.publish("orders.core", b"{}")
        msgs = await sub.fetch(4, timeout=5)
        await msgs[0].ack()
        await msgs[1].nak()
        await msgs[2].term()
        await msgs[3].in_progress()
        again = await sub.fetch(1, timeout=5)  # the nak'ed message comes back at once
        assert again[0].metadata.num_delivered == 2
        await again[0].ack()
        await msgs[3].ack()
        await nc.flush()
        await until(lambda: len(kinds(observer, "ack")) >= 6)
        await nc.close()
        await admin.close()
        await until(lambda: kinds(observer, "nats_closed"))

    asyncio.run(asyncio.wait_for(body(), 30))
    (connect,) = kinds(observer, "nats_connect")
    assert connect["name"] == "svc" and connect["service"] == "svc" and connect["conn"] == 1
    subs = {e["subject"]: e for e in kinds(observer, "nats_sub")}
    assert subs["orders.core"]["queue"] == "workers"
    assert any(s.startswith("_INBOX.") for s in subs)  # the pull consumer's reply inbox
    (created,) = kinds(observer, "js_consumer")
    assert created["api"] == "durable_create" and created["stream"] == "S" and created["consumer"] == "svc"
    assert created["filter_subjects"] == ["orders.a", "orders.b"] and created["ack_policy"] == "explicit"
    assert created["ack_wait"] == 1.5 and created["max_deliver"] == 3 and created["durable"]
    deliveries = kinds(observer, "delivery")
    assert [(d["subject"], d["stream_seq"], d["delivered"]) for d in deliveries] == [
        ("orders.a", 1, 1), ("orders.b", 2, 1), ("orders.a", 3, 1), ("orders.b", 4, 1), ("orders.b", 2, 2)]
    assert all(d["stream"] == "S" and d["consumer"] == "svc" for d in deliveries)
    answers = [(a["how"], a["stream_seq"], a["delivered"]) for a in kinds(observer, "ack")]
    assert answers == [("ack", 1, 1), ("nak", 2, 1), ("term", 3, 1), ("wpi", 4, 1), ("ack", 2, 2), ("ack", 4, 1)]
    assert observer.core_counts() == {"orders.core": 1}  # counted per subject, not recorded one by one
    assert observer.held() == {} and observer.open_connections == 0 and observer.ever_connected


def test_held_deliveries_and_activity(env: Env, nats_server: NatsServer) -> None:
    """A delivery not answered yet is held; idle pull requests and their status replies are not activity."""
    url, observer = observed(env, nats_server)

    async def body() -> None:
        admin = await nats.connect(f"nats://{nats_server.addr}")
        js = admin.jetstream()
        await js.add_stream(StreamConfig(name="H", subjects=["held.>"]))
        nc = await nats.connect(url)
        sjs = nc.jetstream()
        await sjs.add_consumer("H", ConsumerConfig(durable_name="h", ack_policy=AckPolicy.EXPLICIT, ack_wait=30))
        sub = await sjs.pull_subscribe_bind(consumer="h", stream="H")
        await js.publish("held.x", b"1")
        (msg,) = await sub.fetch(1, timeout=5)
        await until(lambda: observer.held() == {("H", "h", 1): 1})
        loop = asyncio.get_running_loop()
        before = observer.last_activity
        for _ in range(3):  # nothing to fetch: requests and 404/408 replies only
            try:
                await sub.fetch(1, timeout=0.2)
            except nats.errors.TimeoutError:
                pass
        assert observer.last_activity == before, "an idle pull is not activity"
        await msg.ack()
        await nc.flush()
        await until(lambda: observer.held() == {})
        assert observer.last_activity > before
        assert loop.time() > 0
        await nc.close()
        await admin.close()

    asyncio.run(asyncio.wait_for(body(), 30))


def test_server_view_facts(env: Env, nats_server: NatsServer, tmp_path: Any) -> None:
    """Advisories: MAX_DELIVERIES, MSG_TERMINATED and MSG_NAKED (not MSG_NAK) under $JS.EVENT.ADVISORY.CONSUMER;
    the monitoring port's /jsz?consumers=true gives num_pending, num_ack_pending, num_redelivered per consumer and
    /connz?subs=true&auth=true the user, name and subscriptions of each connection."""
    import socket
    import subprocess
    import time

    from chaos_testkit import NATS_BIN

    def free() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port, mport = free(), free()
    conf = tmp_path / "n.conf"
    conf.write_text(f"listen: 127.0.0.1:{port}\nhttp: 127.0.0.1:{mport}\njetstream {{ store_dir: {json.dumps(str(tmp_path / 'js'))} }}\n"
                    "authorization { users = [ {user: admin, password: a}, {user: svc, password: b} ] }\n")
    proc = subprocess.Popen([str(NATS_BIN), "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def get(path: str) -> Any:
        with urllib.request.urlopen(f"http://127.0.0.1:{mport}{path}", timeout=5) as r:
            return json.load(r)

    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                get("/healthz")
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.05)

        async def body() -> tuple[list[tuple[str, dict[str, Any]]], Any, Any]:
            advisories: list[tuple[str, dict[str, Any]]] = []

            async def on_adv(msg: Any) -> None:
                advisories.append((msg.subject, json.loads(msg.data)))

            admin = await nats.connect(f"nats://admin:a@127.0.0.1:{port}")
            await admin.subscribe("$JS.EVENT.ADVISORY.CONSUMER.>", cb=on_adv)
            js = admin.jetstream()
            await js.add_stream(StreamConfig(name="A", subjects=["adv.>"]))
            nc = await nats.connect(f"nats://svc:b@127.0.0.1:{port}", name="svc-conn")
            sjs = nc.jetstream()
            await sjs.add_consumer("A", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, ack_wait=30,
                                                       max_deliver=2))
            sub = await sjs.pull_subscribe_bind(consumer="c", stream="A")
            for i in range(3):
                await js.publish("adv.x", b"%d" % i)
            m1, m2, m3 = await sub.fetch(3, timeout=5)
            await m1.term()
            await m2.nak()
            (again,) = await sub.fetch(1, timeout=5)
            await again.nak()  # second delivery of a max_deliver=2 consumer: dead-lettered
            try:  # the server advises it when it next tries to deliver, so a pull must be waiting
                await sub.fetch(1, timeout=1)
            except nats.errors.TimeoutError:
                pass
            await until(lambda: sum("MAX_DELIVERIES" in s for s, _ in advisories) >= 1)
            jsz = get("/jsz?consumers=true")
            connz = get("/connz?subs=true&auth=true")
            await m3.ack()
            await nc.close()
            await admin.close()
            return advisories, jsz, connz

        advisories, jsz, connz = asyncio.run(asyncio.wait_for(body(), 30))
    finally:
        proc.kill()
        proc.wait(5)
    subjects = [s for s, _ in advisories]
    assert "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.A.c" in subjects
    assert "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.A.c" in subjects
    assert "$JS.EVENT.ADVISORY.CONSUMER.CREATED.A.c" in subjects
    (maxd,) = [d for s, d in advisories if s == "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.A.c"]
    assert (maxd["stream_seq"], maxd["deliveries"]) == (2, 2)
    (term,) = [d for s, d in advisories if "MSG_TERMINATED" in s]
    assert term["stream_seq"] == 1
    (consumer,) = jsz["account_details"][0]["stream_detail"][0]["consumer_detail"]
    assert consumer["name"] == "c" and consumer["num_ack_pending"] == 1 and consumer["num_pending"] == 0
    assert consumer["num_redelivered"] >= 1 and "ack_floor" in consumer and "delivered" in consumer
    svc = next(c for c in connz["connections"] if c.get("name") == "svc-conn")
    assert svc["authorized_user"] == "svc" and svc["subscriptions_list"]


def test_deliveries_of_a_consumer_without_acks_are_not_held() -> None:
    observer = WireObserver("svc")
    conn = observer.open_connection()
    body = b'{"stream_name":"S","config":{"durable_name":"quiet","ack_policy":"none"}}'
    conn.up.feed(b"PUB $JS.API.CONSUMER.DURABLE.CREATE.S.quiet _INBOX.x.1 %d\r\n%s\r\n" % (len(body), body))
    conn.down.feed(b"MSG orders.a 4 $JS.ACK.S.quiet.1.1.1.1700000000000000000.0 1\r\nx\r\n"
                   b"MSG orders.a 5 $JS.ACK.S.loud.1.2.1.1700000000000000001.0 1\r\ny\r\n")
    assert observer.held() == {("S", "loud", 2): 1}  # ack policy none: the server waits for no answer
