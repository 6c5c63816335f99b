"""The shop's invariants over the services' ``GET /state``, for sagaproof's ``[invariants]``.

Each function takes the running ``system`` (``system.services[name].http.get(path).json()``) and
raises ``AssertionError`` naming every order that breaks the rule.  Orders still PENDING are in
flight and are only checked for things that can never be right (a second charge, stock below 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the harness hands each invariant the running system
    from sagaproof import System


def _state(system: System, service: str) -> dict[str, Any]:
    state: dict[str, Any] = system.services[service].http.get("/state").json()
    return state


def _fail(rule: str, problems: list[str]) -> None:
    if problems:
        shown = problems[:20]
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise AssertionError(f"{rule}: {len(problems)} problem(s)\n  " + "\n  ".join(shown) + more)


def money_conserved(system: System) -> None:
    """Every order is charged at most once; a COMPLETED order keeps exactly its amount; a CANCELLED
    order keeps nothing (refunded in full, or never charged); and the money payment holds equals the
    total of the COMPLETED orders (plus whatever is still in flight for PENDING ones)."""
    orders = _state(system, "order")["orders"]
    payment = _state(system, "payment")
    payments = payment["payments"]
    problems = []
    for order_id, p in payments.items():
        net = p["charged"] - p["refunded"]
        status = orders.get(order_id, {}).get("status", "UNKNOWN")
        if p["charges"] > 1:
            problems.append(f"order {order_id} ({status}) was charged {p['charges']} times: "
                            f"{p['charged']} cents for an amount of {p['amount']}")
        if p["refunded"] > p["charged"]:
            problems.append(f"order {order_id} ({status}) was refunded {p['refunded']} cents "
                            f"but charged only {p['charged']}")
        if status == "CANCELLED" and net != 0:
            problems.append(f"order {order_id} is CANCELLED but {net} cents are still charged "
                            f"(charged {p['charged']}, refunded {p['refunded']})")
        if status == "COMPLETED" and net != p["amount"]:
            problems.append(f"order {order_id} is COMPLETED but holds {net} cents "
                            f"for an amount of {p['amount']}")
    for order_id, order in orders.items():
        if order["status"] == "COMPLETED" and order_id not in payments:
            problems.append(f"order {order_id} is COMPLETED but payment has no record of it")
    if not problems:
        in_flight = sum(p["charged"] - p["refunded"] for oid, p in payments.items()
                        if orders.get(oid, {}).get("status", "PENDING") == "PENDING")
        completed = sum(o["amount"] for o in orders.values() if o["status"] == "COMPLETED")
        if payment["balance"] - in_flight != completed:
            problems.append(f"payment holds {payment['balance'] - in_flight} cents for finished orders "
                            f"but the COMPLETED orders are worth {completed}")
    _fail("money is not conserved", problems)


def stock_conserved(system: System) -> None:
    """Per SKU ``initial == available + reserved`` and ``available >= 0``; a COMPLETED order holds
    its reservation; a CANCELLED order holds none (released, or never reserved)."""
    orders = _state(system, "order")["orders"]
    inventory = _state(system, "inventory")
    reservations = inventory["reservations"]
    problems = []
    reserved: dict[str, int] = {}
    for order_id, r in reservations.items():
        status = orders.get(order_id, {}).get("status", "UNKNOWN")
        if r["status"] == "RESERVED":
            for item in r["items"]:
                reserved[item["sku"]] = reserved.get(item["sku"], 0) + item["qty"]
            if status == "CANCELLED":
                problems.append(f"order {order_id} is CANCELLED but its stock is still reserved")
        elif status == "COMPLETED":
            problems.append(f"order {order_id} is COMPLETED but its reservation is {r['status']}")
    for order_id, order in orders.items():
        if order["status"] == "COMPLETED" and order_id not in reservations:
            problems.append(f"order {order_id} is COMPLETED but inventory never reserved its stock")
    for sku, s in inventory["stock"].items():
        if s["available"] < 0:
            problems.append(f"{sku}: available stock is {s['available']}")
        if s["initial"] != s["available"] + reserved.get(sku, 0):
            problems.append(f"{sku}: initial {s['initial']} != available {s['available']} "
                            f"+ reserved {reserved.get(sku, 0)}")
    _fail("stock is not conserved", problems)
