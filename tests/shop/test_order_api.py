"""The order service's HTTP API, against the real process: validation, idempotent retries, the
OpenAPI document, and an order accepted while NATS is unreachable (the outbox delivers it later)."""

from __future__ import annotations

import random

import requests
from shop_fixture import load_shop_module

workload = load_shop_module("workload")


def test_order_api(make_shop):
    shop = make_shop(start=False)
    shop.start(only=("order",))
    order = shop["order"]
    body = workload.order_body(0, random.Random(1)) | {"order_id": "o-1"}

    created = requests.post(order.url("/orders"), json=body, timeout=5)
    assert created.status_code == 201
    assert created.json()["status"] == "PENDING"
    again = requests.post(order.url("/orders"), json=body | {"amount": 5}, timeout=5)
    assert (again.status_code, again.json()["amount"]) == (200, body["amount"])
    assert requests.get(order.url("/orders/o-1"), timeout=5).json()["order_id"] == "o-1"

    for bad, message in [
        ({**body, "amount": 0}, "'amount' must be between 1 and"),
        ({**body, "amount": True}, "'amount' must be an integer"),
        ({**body, "items": []}, "'items' must be a list of 1 to 20 items"),
        ({**body, "address": {**body["address"], "country": "de"}}, "'country' must match"),
        ({**body, "colour": "red"}, "unknown field(s) colour"),
        ({k: v for k, v in body.items() if k != "customer_id"}, "'order' is missing customer_id"),
    ]:
        response = requests.post(order.url("/orders"), json=bad, timeout=5)
        assert response.status_code == 400 and message in response.json()["error"], response.text
    assert requests.post(order.url("/orders"), data=b"{not json", timeout=5).status_code == 400

    assert requests.get(order.url("/orders/nope"), timeout=5).status_code == 404
    assert requests.get(order.url("/nowhere"), timeout=5).status_code == 404
    wrong_method = requests.delete(order.url("/orders"), timeout=5)
    assert (wrong_method.status_code, wrong_method.headers["Allow"]) == (405, "POST")
    spec = requests.get(order.url("/openapi.json"), timeout=5).json()
    assert spec["openapi"].startswith("3.1") and "post" in spec["paths"]["/orders"]


def test_an_order_placed_while_nats_is_down_is_published_when_it_returns(make_shop, nats_server):
    shop = make_shop()
    shop["order"].kill()
    nats_server.stop()
    shop["order"].start()
    # The HTTP side comes up before NATS is reachable; /health says 503 until it is.
    shop["order"].wait_listening()
    assert requests.get(shop["order"].url("/health"), timeout=5).status_code == 503
    order_id = shop.place(workload.order_body(0, random.Random(2)))["order_id"]
    nats_server.restart()
    shop["order"].wait_ready()
    assert shop.wait_terminal([order_id], 15)[order_id]["status"] == "COMPLETED"
