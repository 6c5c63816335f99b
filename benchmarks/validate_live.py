"""Benchmark: LiveValidator throughput vs raw jsonschema-rs on the same message.

Run: .venv/bin/python benchmarks/validate_live.py [N]
Prints validations/s for both and the ratio (LiveValidator / raw).
"""

from __future__ import annotations

import json
import sys
import time

import jsonschema_rs
from sagaproof.contracts.live import LiveValidator
from sagaproof.contracts.model import Channel, ContractSet, Message

SCHEMA = {
    "type": "object",
    "required": ["order_id", "customer", "amount", "currency", "items"],
    "properties": {
        "order_id": {"type": "string", "format": "uuid"},
        "customer": {"type": "string", "minLength": 1},
        "amount": {"type": "number", "minimum": 0},
        "currency": {"enum": ["EUR", "USD"]},
        "items": {"type": "array", "items": {"type": "object", "required": ["sku"],
                                             "properties": {"sku": {"type": "string"}, "qty": {"type": "integer"}}}},
    },
}
PAYLOAD = json.dumps({"order_id": "2a0f19e1-1655-5703-aedb-03bbff5171e1", "customer": "c-1", "amount": 12.5,
                      "currency": "EUR", "items": [{"sku": "A", "qty": 1}]}).encode()


def main(n: int = 200_000) -> None:
    cs = ContractSet()
    for i in range(20):  # a realistic number of channels, one with a wildcard
        cs.channels[f"svc{i}.event"] = Channel(f"svc{i}.event", producers={f"s{i}": [Message("E", SCHEMA)]})
    cs.channels["orders.*"] = Channel("orders.*", producers={"order": [Message("OrderCreated", SCHEMA)]})
    lv = LiveValidator(cs)
    assert lv.validate("orders.created", PAYLOAD, None) == []
    raw = jsonschema_rs.validator_for(SCHEMA, validate_formats=True)

    t = time.perf_counter()
    for _ in range(n):
        raw.is_valid(json.loads(PAYLOAD))
    raw_rate = n / (time.perf_counter() - t)

    t = time.perf_counter()
    for _ in range(n):
        lv.validate("orders.created", PAYLOAD, None)
    lv_rate = n / (time.perf_counter() - t)
    print(f"raw jsonschema-rs (json.loads + is_valid): {raw_rate:,.0f} validations/s")
    print(f"LiveValidator.validate:                  {lv_rate:,.0f} validations/s")
    print(f"ratio: {lv_rate / raw_rate:.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200_000)
