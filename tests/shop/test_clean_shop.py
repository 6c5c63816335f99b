"""The correct shop, run for real: 200 orders through every outcome path while services are
killed with SIGKILL and restarted; every order must end in its one right outcome with money and
stock conserved and every event true to the contracts."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from shop_contracts import violations
from shop_fixture import TcpProxy, load_shop_module

workload = load_shop_module("workload")
invariants = load_shop_module("invariants")

ORDERS = 200
# (seconds into the run, service) - each is SIGKILLed then restarted at once with the same data dir.
KILLS = [(0.3, "payment"), (0.8, "inventory"), (1.3, "shipping"), (1.8, "order"), (2.3, "payment")]

STEPS_BY_PATH = {
    "completed": Counter({"orders.created": 1, "payments.completed": 1, "inventory.reserved": 1,
                          "shipping.scheduled": 1, "orders.completed": 1}),
    "payment_declined": Counter({"orders.created": 1, "payments.failed": 1, "orders.cancelled": 1}),
    "out_of_stock": Counter({"orders.created": 1, "payments.completed": 1, "inventory.failed": 1,
                             "payments.refunded": 1, "orders.cancelled": 1}),
    "undeliverable": Counter({"orders.created": 1, "payments.completed": 1, "inventory.reserved": 1,
                              "shipping.failed": 1, "payments.refunded": 1, "inventory.released": 1,
                              "orders.cancelled": 1}),
}


def test_clean_shop_survives_sigkill_mid_run(make_shop):
    shop = make_shop()
    rng = random.Random(20261126)
    bodies = [workload.order_body(i, rng) | {"order_id": f"order-{i:04d}"} for i in range(ORDERS)]
    paths = {b["order_id"]: workload.path_of(i) for i, b in enumerate(bodies)}
    assert set(paths.values()) == set(STEPS_BY_PATH)

    start = time.monotonic()
    done = threading.Event()

    def drive() -> None:
        with ThreadPoolExecutor(8) as pool:
            # Retrying with the same order_id is what makes a POST safe while order is down.
            list(pool.map(lambda b: (shop.place(b, retry_for=15), time.sleep(0.05)), bodies))
        done.set()

    driver = threading.Thread(target=drive)
    driver.start()
    for at, name in KILLS:
        time.sleep(max(0.0, at - (time.monotonic() - start)))
        shop[name].restart()  # SIGKILL, then start again on the same data dir
    driver.join(60)
    assert done.is_set(), "the workload did not finish"

    orders = shop.wait_terminal(list(paths), timeout=30)
    shop.wait_idle()
    wrong = {o: (orders[o]["status"], p) for o, p in paths.items()
             if orders[o]["status"] != workload.expected_status(p)}
    assert not wrong, f"orders with the wrong outcome (status, path): {wrong}"
    assert len(orders) == ORDERS

    system = shop.as_system()
    invariants.money_conserved(system)
    invariants.stock_conserved(system)

    events = shop.events()
    ids = Counter(e["event_id"] for e in events)
    assert [i for i, n in ids.items() if n > 1] == [], "an event was stored twice"
    per_order: dict[str, Counter[str]] = defaultdict(Counter)
    for event in events:
        per_order[event["order_id"]][event["type"]] += 1
    off = {o: dict(per_order[o] - STEPS_BY_PATH[p]) | {"missing": dict(STEPS_BY_PATH[p] - per_order[o])}
           for o, p in paths.items() if per_order[o] != STEPS_BY_PATH[p]}
    assert not off, f"orders whose event history is not their path's: {dict(list(off.items())[:5])}"
    assert violations(events) == []


def test_clean_shop_survives_a_cut_and_a_stalled_nats_link(make_shop, nats_server):
    # payment and inventory reach NATS through proxies: payment's link is cut (disconnect), then
    # inventory's stalls (bytes silently dropped, the connection stays up) for 5 s.
    port = int(nats_server.url.rsplit(":", 1)[1])
    proxies = {name: TcpProxy(port) for name in ("payment", "inventory")}
    try:
        shop = make_shop(start=False)
        for name, proxy in proxies.items():
            shop[name].env["NATS_URL"] = f"nats://127.0.0.1:{proxy.port}"
        shop.start()
        rng = random.Random(5)
        bodies = [workload.order_body(i, rng) | {"order_id": f"order-{i:04d}"} for i in range(60)]
        paths = {b["order_id"]: workload.path_of(i) for i, b in enumerate(bodies)}
        for i, body in enumerate(bodies):
            if i == 10:
                proxies["payment"].cut()
            if i == 30:
                proxies["inventory"].stall = True
            shop.place(body)
            time.sleep(0.02)
        time.sleep(5)
        proxies["inventory"].stall = False
        orders = shop.wait_terminal(list(paths), timeout=30)
        assert {o: orders[o]["status"] for o in paths} == {
            o: workload.expected_status(p) for o, p in paths.items()}
        shop.wait_idle()
        invariants.money_conserved(shop.as_system())
        invariants.stock_conserved(shop.as_system())
    finally:
        for proxy in proxies.values():
            proxy.close()
