"""A git repository made by the test for can-i-deploy and record-deployment: a two-service system in a
subdirectory, three versions of the producer and two of the consumer, each a commit (tagged c0..c4).

    c0  README only (before the contracts existed)
    c1  order v1 sends {order_id, amount};            payment v1 requires order_id, amount (pact: same)
    c2  order v2 sends {order_id, amount, currency}
    c3                                                 payment v2 requires order_id, currency (pact: same)
    c4  order v3 sends {order_id, total, currency}     (amount renamed to total)
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import yaml

GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.invalid", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.invalid", "GIT_CONFIG_NOSYSTEM": "1"}

SYSTEM_TOML = """\
[nats]
[[nats.streams]]
name = "ORDERS"
subjects = ["orders.>"]

[services.order]
command = ["true"]
contracts = ["contracts/order.yaml"]

[services.payment]
command = ["true"]
contracts = ["contracts/payment.yaml"]

[pacts]
dir = "contracts/pacts"
"""


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV, "HOME": str(repo)}
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True,
                          env=env).stdout.strip()


def doc(service: str, action: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    """A one-channel AsyncAPI 3 document: *service* sends or receives OrderCreated on orders.created."""
    return {
        "asyncapi": "3.0.0",
        "info": {"title": service, "version": "1.0.0"},
        "channels": {"created": {"address": "orders.created", "messages": {"OrderCreated": {"payload": {
            "type": "object", "properties": props, "required": required}}}}},
        "operations": {action: {"action": action, "channel": {"$ref": "#/channels/created"}}},
    }


STR = {"type": "string"}
INT = {"type": "integer", "minimum": 0}
ORDER = {
    1: doc("order", "send", {"order_id": STR, "amount": INT}, ["order_id", "amount"]),
    2: doc("order", "send", {"order_id": STR, "amount": INT, "currency": STR}, ["order_id", "amount", "currency"]),
    3: doc("order", "send", {"order_id": STR, "total": INT, "currency": STR}, ["order_id", "total", "currency"]),
}
PAYMENT = {
    1: doc("payment", "receive", {"order_id": STR, "amount": INT}, ["order_id", "amount"]),
    2: doc("payment", "receive", {"order_id": STR, "currency": STR}, ["order_id", "currency"]),
}
PACT_CONTENT = {1: {"order_id": "o-1", "amount": 1250}, 2: {"order_id": "o-1", "currency": "EUR"}}


def pact(consumer: str, provider: str, content: Any, subject: str = "orders.created",
         description: str = "an order was created") -> dict[str, Any]:
    """A minimal V4 message pact as pact-python writes it."""
    return {"consumer": {"name": consumer}, "provider": {"name": provider},
            "interactions": [{"type": "Asynchronous/Messages", "description": description,
                              "contents": {"content": content, "contentType": "application/json",
                                           "encoded": False},
                              "metadata": {"contentType": "application/json", "subject": subject},
                              "providerStates": [], "pending": False}],
            "metadata": {"pactSpecification": {"version": "4.0"}}}


def write(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else
                    json.dumps(data, indent=2) if path.suffix == ".json" else yaml.safe_dump(data, sort_keys=False))


def make_repo(root: Path) -> Path:
    """The repository described in the module docstring; returns its top directory (system in shop/)."""
    repo = root / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    shop = repo / "shop"
    write(repo / "README.md", "the shop\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "c0: nothing yet")
    git(repo, "tag", "c0")
    steps = [("c1", 1, 1), ("c2", 2, 1), ("c3", 2, 2), ("c4", 3, 2)]
    for tag, o, p in steps:
        write(shop / "sagaproof.toml", SYSTEM_TOML)
        write(shop / "contracts" / "order.yaml", ORDER[o])
        write(shop / "contracts" / "payment.yaml", PAYMENT[p])
        write(shop / "contracts" / "pacts" / "payment-order.json", pact("payment", "order", PACT_CONTENT[p]))
        git(repo, "add", "-A")
        git(repo, "commit", "-qm", f"{tag}: order v{o}, payment v{p}")
        git(repo, "tag", tag)
    return repo


def sagaproof(capsys: Any, *args: str) -> tuple[int, str, str]:
    """Run the CLI in this process (exit code, stdout, stderr); SIGTERM's handler is put back afterwards."""
    from sagaproof.harness.front import cli
    old = signal.getsignal(signal.SIGTERM)
    capsys.readouterr()
    try:
        code = cli.main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        signal.signal(signal.SIGTERM, old)
    out, err = capsys.readouterr()
    return code, out, err
