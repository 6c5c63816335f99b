"""Read the shop's AsyncAPI files just enough to validate events against them (test helper)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema_rs
import yaml

CONTRACTS = Path(__file__).resolve().parents[2] / "examples" / "shop" / "contracts"


def _inline(node: Any, root: dict[str, Any]) -> Any:
    if isinstance(node, dict):
        if "$ref" in node:
            target: Any = root
            for part in node["$ref"].removeprefix("#/").split("/"):
                target = target[part]
            return _inline(target, root)
        return {k: _inline(v, root) for k, v in node.items()}
    if isinstance(node, list):
        return [_inline(v, root) for v in node]
    return node


def load_contracts() -> dict[tuple[str, str, str], Any]:
    """``(service, "send" | "receive", subject) -> validator`` for every operation of every file."""
    validators = {}
    for path in sorted(CONTRACTS.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        assert doc["asyncapi"] == "3.0.0", path
        for op in _inline(doc["operations"], doc).values():
            subject = op["channel"]["address"]
            for message in op["messages"]:
                validators[(path.stem, op["action"], subject)] = jsonschema_rs.validator_for(message["payload"])
    return validators


def violations(events: list[dict[str, Any]]) -> list[str]:
    """Each way an event breaks its producer's contract or a consumer's contract."""
    validators = load_contracts()
    found = []
    for event in events:
        subject = event["_subject"]
        body = {k: v for k, v in event.items() if k != "_subject"}
        checks = [(k, v) for k, v in validators.items() if k[2] == subject]
        if not any(k[1] == "send" for k, _ in checks):
            found.append(f"{subject}: no service declares that it sends this")
        for (service, action, _), validator in checks:
            for error in validator.iter_errors(body):
                found.append(f"{subject} {body.get('order_id')}: breaks {service}'s {action} contract: "
                             f"{error.message}")
    return found
