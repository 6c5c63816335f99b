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
from sagaproof.chaos.observe import WireObserver, _Scanner, attach, parse_ack_subject


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


def test_scanner_reads_every_frame_whatever_the_split() -> None:
    hdr = b"NATS/1.0\r\nNats-Msg-Id: a\r\n\r\n"
    stream = (b"INFO {}\r\nPING\r\nMSG orders.a 1 $JS.ACK.S.c.1.1.1.1.0 3\r\nabc\r\n"
              b"HMSG _INBOX.x 2 %d %d\r\n%s\r\n" % (len(hdr), len(hdr), hdr) +
              b"HMSG orders.b 1 $JS.ACK.S.c.2.2.2.1.0 %d %d\r\n%sxyz\r\nMSG orders.c 3 0\r\n\r\n" % (
                  len(hdr), len(hdr) + 3, hdr))
    seen: list[tuple[bytes, int]] = []

    def handle(op: bytes, parts: list[bytes], payload: bytes | None, size: int) -> bool:
        seen.append((b" ".join(parts[:2]), size))
        return False

    whole = _Scanner(handle, (b"",))  # every sized frame goes to `handle`, with its payload
    whole.feed(stream)
    expected = list(seen)
    assert [s for s, _ in expected] == [b"INFO {}", b"PING", b"MSG orders.a", b"HMSG _INBOX.x", b"HMSG orders.b",
                                        b"MSG orders.c"]
    rng = random.Random(7)
    for _ in range(200):
        seen.clear()
        scanner = _Scanner(handle, (b"",))
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 12)))
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            scanner.feed(stream[a:b])
        assert seen == expected and not scanner.broken


def test_scanner_gives_up_on_a_stream_that_is_not_nats() -> None:
    scanner = _Scanner(lambda *a: False)
    assert scanner.feed(b"x" * 5000) and scanner.broken


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
