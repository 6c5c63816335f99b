"""Message-keyed fault windows (``nats_windows``) on a real nats-server and a real JetStream consumer: the n-th
first delivery of a subject is the one hit, a dropped +ACK makes the server redeliver, a duplicate is the same
frame twice, and after a crash window's +ACK nothing the client sends passes; plus the plan's pure logic."""

from __future__ import annotations

import asyncio
from typing import Any

import nats
from chaos_testkit import Env, NatsServer
from nats.js.api import AckPolicy, ConsumerConfig
from sagaproof.chaos.toxiproxy import Window, WindowPlan, register_plan, unregister_plan


def _plan(env: Env, nats_server: NatsServer, windows: list[Window]) -> tuple[list[tuple[str, str]], str]:
    fired: list[tuple[str, str]] = []
    plan = WindowPlan(windows, on_fire=lambda w, stage: fired.append((w.id, stage)))
    name = f"plan-{id(plan)}"
    register_plan(name, plan)
    host, port = env.proxy("svc", upstream=nats_server.addr)
    env.toxic("svc", "nats_windows", stream="downstream", plan=name)
    env.toxic("svc", "nats_windows", stream="upstream", plan=name)
    return fired, f"nats://{host}:{port}"


async def _consumer(proxied: str, direct: str, count: int) -> tuple[Any, Any, Any, Any]:
    nc = await nats.connect(direct)
    js = nc.jetstream()
    await js.add_stream(name="T", subjects=["t.>"])
    for i in range(1, count + 1):
        await js.publish("t.a", f"m{i}".encode())
    svc = await nats.connect(proxied, max_reconnect_attempts=0)
    sjs = svc.jetstream(timeout=2)
    await sjs.add_consumer("T", ConsumerConfig(durable_name="c", ack_policy=AckPolicy.EXPLICIT, ack_wait=1.0,
                                               filter_subject="t.a", max_deliver=-1))
    return nc, js, svc, await sjs.pull_subscribe_bind("c", "T")


def test_redelivery_and_duplicate_windows_hit_the_nth_delivery(env: Env, nats_server: NatsServer) -> None:
    fired, proxied = _plan(env, nats_server, [Window("w1", "redeliver", "t.a", 2), Window("w2", "duplicate", "t.a", 3)])

    async def body() -> list[tuple[bytes, int]]:
        nc, _js, svc, sub = await _consumer(proxied, f"nats://{nats_server.addr}", 4)
        seen: list[tuple[bytes, int]] = []
        try:
            while (b"m2", 2) not in seen:  # the dropped ack's message comes again, as a redelivery
                try:
                    msgs = await sub.fetch(1, timeout=2)
                except nats.errors.TimeoutError:
                    continue
                for msg in msgs:
                    seen.append((msg.data, msg.metadata.num_delivered))
                    await msg.ack()
            return seen
        finally:
            await svc.close()
            await nc.close()

    seen = asyncio.run(asyncio.wait_for(body(), 30))
    assert seen.count((b"m3", 1)) == 2, "the 3rd delivery was passed twice, same body, same delivery count"
    assert seen.count((b"m1", 1)) == 1 and seen.count((b"m4", 1)) == 1
    assert (b"m2", 2) in seen and seen.count((b"m2", 1)) == 1
    assert ("w1", "delivered") in fired and ("w1", "ack") in fired and ("w1", "redelivered") in fired
    assert ("w2", "delivered") in fired and ("w2", "ack") not in fired


def test_after_a_crash_windows_ack_nothing_more_the_client_sends_passes(env: Env, nats_server: NatsServer) -> None:
    fired, proxied = _plan(env, nats_server, [Window("w1", "crash_after_ack", "", 2)])

    async def body() -> tuple[int, int, bool]:
        nc, js, svc, sub = await _consumer(proxied, f"nats://{nats_server.addr}", 3)
        try:
            for _ in range(2):
                (msg,) = await sub.fetch(1, timeout=5)
                await msg.ack()
            held = False
            try:
                await svc.jetstream(timeout=1).publish("t.b", b"after the ack")
            except nats.errors.TimeoutError:
                held = True  # the publish never reached the server, so no PubAck came
            info = await js.consumer_info("T", "c")
            stored = (await js.stream_info("T")).state.messages
            return info.ack_floor.stream_seq, stored, held
        finally:
            await svc.close()
            await nc.close()

    ack_floor, stored, held = asyncio.run(asyncio.wait_for(body(), 30))
    assert ack_floor == 2, "the 2nd delivery's +ACK passed the link (the server has it)"
    assert held and stored == 3, "what the client sent after that +ACK never reached the server"
    assert fired == [("w1", "delivered"), ("w1", "ack")]


def test_plan_counts_first_deliveries_per_pattern_and_moves_a_second_window_on() -> None:
    fired: list[tuple[str, str]] = []
    plan = WindowPlan([Window("a", "redeliver", "", 2), Window("b", "duplicate", "x.*", 2)],
                      on_fire=lambda w, stage: fired.append((w.id, stage)))
    ack = b"$JS.ACK.S.c.%d.%d.%d.1700000000000000000.0"
    assert plan.delivery("x.1", ack % (1, 1, 1), b"{}") == 1
    assert plan.delivery("x.1", ack % (1, 2, 2), b"{}") == 1  # both windows are on it: "a" takes it, "b" moves on
    assert [w.nth for w in plan.windows] == [2, 3]
    assert plan.delivery("y.1", ack % (1, 3, 3), b"{}") == 1  # y.1 is not x.*
    assert plan.delivery("x.2", ack % (2, 1, 4), b"{}") == 1  # a redelivery is not counted
    assert plan.delivery("x.2", ack % (1, 4, 5), b"{}") == 2  # the 3rd first delivery of x.*: duplicated
    assert plan.answer(ack % (1, 2, 2), b"-NAK") == "pass"  # only the acknowledgement is the window's moment
    assert plan.answer(ack % (1, 2, 2), b"+ACK") == "drop"
    assert plan.answer(ack % (1, 2, 2), b"+ACK") == "pass"  # once
    assert plan.delivery("x.1", ack % (2, 2, 6), b"{}") == 1
    assert fired == [("a", "delivered"), ("b", "delivered"), ("a", "ack"), ("a", "redelivered")]


def test_a_toxic_naming_no_plan_passes_everything(env: Env, nats_server: NatsServer) -> None:
    unregister_plan("nobody")
    host, port = env.proxy("svc", upstream=nats_server.addr)
    env.toxic("svc", "nats_windows", stream="downstream", plan="nobody")

    async def body() -> bytes:
        nc = await nats.connect(f"nats://{host}:{port}")
        try:
            sub = await nc.subscribe("a")
            await nc.publish("a", b"hello")
            return (await sub.next_msg(timeout=5)).data
        finally:
            await nc.close()

    assert asyncio.run(asyncio.wait_for(body(), 30)) == b"hello"


def test_a_window_put_back_takes_the_next_delivery_and_ignores_the_ack_it_gave_up_on() -> None:
    fired: list[tuple[str, int, str]] = []
    plan = WindowPlan([Window("k", "crash_after_ack", "", 2)], on_fire=lambda w, stage: fired.append((w.id, w.nth, stage)))
    ack = b"$JS.ACK.S.c.%d.%d.%d.1700000000000000000.0"
    window = plan.windows[0]
    assert plan.rearm(window) is False  # not delivered yet: nothing to put back
    plan.delivery("x.1", ack % (1, 1, 1), b"{}")
    plan.delivery("x.1", ack % (1, 2, 2), b"{}")  # the window takes it ...
    assert plan.rearm(window) is True  # ... and its owner puts it back (the service was busy with another fault)
    assert (window.state, window.nth, window.rearmed, window.ack) == ("armed", 3, 1, None)
    assert plan.answer(ack % (1, 2, 2), b"+ACK") == "pass"  # the ack of the delivery it gave up on is not its moment
    plan.delivery("x.1", ack % (1, 3, 3), b"{}")
    assert plan.answer(ack % (1, 3, 3), b"+ACK") == "pass_then_hold"
    assert plan.rearm(window) is False  # its ack came: too late to put it back
    assert fired == [("k", 2, "delivered"), ("k", 3, "delivered"), ("k", 3, "ack")]
    assert plan.last_delivery > 0


def test_a_crash_after_ack_window_does_not_take_an_ack_sent_on_a_later_connection() -> None:
    # The service was cut off after the delivery: its client kept the +ACK through the outage and sent it on
    # reconnecting, long after its work was committed. A kill then shows nothing; the window waits to be put back.
    fired: list[tuple[str, int, str]] = []
    plan = WindowPlan([Window("k", "crash_after_ack", "", 1)], on_fire=lambda w, stage: fired.append((w.id, w.nth, stage)))
    ack = b"$JS.ACK.S.c.%d.%d.%d.1700000000000000000.0"
    window = plan.windows[0]
    before, after = object(), object()  # the link's connection before the outage, and the one after
    plan.delivery("x.1", ack % (1, 1, 1), b"{}", before)
    assert plan.answer(ack % (1, 1, 1), b"+ACK", after) == "pass"
    assert (window.state, window.extra["ack_elsewhere"]) == ("delivered", 1)
    assert plan.rearm(window) is True  # its owner gives up waiting, as for an ack that never came
    plan.delivery("x.1", ack % (1, 2, 2), b"{}", after)
    assert plan.answer(ack % (1, 2, 2), b"+ACK", after) == "pass_then_hold"  # on its own connection: the moment
    assert fired == [("k", 1, "delivered"), ("k", 2, "delivered"), ("k", 2, "ack")]


def test_a_late_window_holds_the_nth_distinct_publication_and_its_retries_until_due() -> None:
    fired: list[tuple[str, str]] = []
    plan = WindowPlan([Window("l", "late", "results.*", 2, extra={"hold": 3.0}),
                       Window("r", "redeliver", "jobs.>", 1)], on_fire=lambda w, stage: fired.append((w.id, stage)))
    assert plan.publish("results.done", b'{"id":1}', now=10.0) is None  # the 1st distinct message passes
    assert plan.publish("results.done", b'{"id":1}', now=10.5) is None  # a retry of it is not counted again
    assert plan.publish("other.subject", b'{"id":2}', now=10.6) is None
    assert plan.publish("results.done", b'{"id":2}', now=11.0) == 14.0  # the 2nd: held 3 s
    assert plan.publish("results.done", b'{"id":2}', now=12.0) == 14.0  # its retry: held as long
    assert plan.publish("results.done", b'{"id":3}', now=12.5) is None  # the window took its message
    plan.released(b'{"id":2}')
    assert plan.publish("results.done", b'{"id":2}', now=14.5) is None  # over: a later retry passes
    assert plan.delivery("results.x", b"$JS.ACK.S.c.1.1.1.1700000000000000000.0", b"{}") == 1  # not a delivery window
    assert fired == [("l", "late"), ("l", "released")]
    assert plan.published == {"results.*": 2}  # counted while the window was armed


def test_a_late_window_holds_what_the_client_sends_from_that_message_on_then_passes_it_in_order(
        env: Env, nats_server: NatsServer) -> None:
    fired: list[tuple[str, str]] = []
    plan = WindowPlan([Window("l", "late", "out.done", 2, extra={"hold": 1.5})],
                      on_fire=lambda w, stage: fired.append((w.id, stage)))
    name = f"plan-{id(plan)}"
    register_plan(name, plan)
    host, port = env.proxy("svc", upstream=nats_server.addr)
    env.toxic("svc", "nats_windows", stream="upstream", plan=name)

    async def body() -> list[tuple[bytes, float]]:
        watcher = await nats.connect(f"nats://{nats_server.addr}")
        got: list[tuple[bytes, float]] = []
        sub = await watcher.subscribe("out.>", cb=None)
        await watcher.flush()
        svc = await nats.connect(f"nats://{host}:{port}")
        try:
            t0 = asyncio.get_running_loop().time()
            for data in (b"one", b"two", b"three"):
                await svc.publish("out.done", data)
            await svc.publish("out.other", b"four")  # another subject, sent after: held too (TCP keeps order)
            await svc.flush(timeout=10)  # its PING is held with the rest: the PONG comes once they pass
            while len(got) < 4:
                msg = await sub.next_msg(timeout=10)
                got.append((msg.data, asyncio.get_running_loop().time() - t0))
            return got
        finally:
            await svc.close()
            await watcher.close()

    try:
        got = asyncio.run(asyncio.wait_for(body(), 30))
    finally:
        unregister_plan(name)
    assert [d for d, _ in got] == [b"one", b"two", b"three", b"four"], "in the order sent"
    assert all(t >= 1.5 for d, t in got if d != b"one"), "the 2nd message on out.done and all after it waited"
    assert fired == [("l", "late"), ("l", "released")]
