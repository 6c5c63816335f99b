"""Run a shop service's real event handlers without NATS, for the consumer pact tests.

:func:`load_service` imports a service module (``payment.py``, ...) the way it starts: settings from the
environment, a fresh SQLite store in ``DATA_DIR``, its handlers registered. Nothing connects to NATS
or opens a port at import; that only happens in ``service.run()``. :func:`deliver` then hands one event
to the handler the service registered for the subject, in one transaction with the processed-event
record and the outbox, as ``ShopService`` does for a message fetched from JetStream.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

SHOP = Path(__file__).resolve().parent.parent
if str(SHOP) not in sys.path:
    sys.path.insert(0, str(SHOP))

from shop_common import add_to_outbox, now_iso, transaction  # noqa: E402

#: Where the pact files go: the shop's contracts/pacts, or SHOP_PACT_DIR (the repository's test suite
#: writes them to a temporary directory and compares them with the committed ones).
PACT_DIR = Path(os.environ.get("SHOP_PACT_DIR") or SHOP / "contracts" / "pacts")


def load_service(name: str, data_dir: Path) -> ModuleType:
    """Import (or re-import) the shop service *name* with its store in *data_dir* and no seeded bug."""
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.pop("SHOP_BUG", None)
    os.environ["SHOP_SHIPPING_DELAY_MS"] = "0"
    module = sys.modules.get(name)
    if module is not None:
        module.service.db.close()
        return importlib.reload(module)
    return importlib.import_module(name)


def deliver(module: ModuleType, subject: str, event: Any) -> list[dict[str, Any]]:
    """Hand *event* (as received on *subject*) to *module*'s service; return the events it publishes.

    Raises ``AssertionError`` if the service does not consume *subject* or the event lacks the
    envelope the shared consumer loop needs (string ``event_id`` and ``order_id``).
    """
    svc = module.service
    sub = svc.handlers.get(subject)
    assert sub is not None, f"{svc.settings.name} does not consume {subject} (it consumes {sorted(svc.handlers)})"
    event = json.loads(json.dumps(event))  # what arrives over the wire
    assert isinstance(event, dict) and isinstance(event.get("event_id"), str) \
        and isinstance(event.get("order_id"), str), f"not an event the shop can process: {event!r}"
    extra = (asyncio.run(sub.prepare(event)),) if sub.prepare is not None else ()
    with transaction(svc.db):
        svc.db.execute("INSERT OR IGNORE INTO processed VALUES (?, ?, ?, ?)",
                       (event["event_id"], subject, event["order_id"], now_iso()))
        out = sub.handler(svc.db, event, *extra)
        add_to_outbox(svc.db, out)
    produced: list[dict[str, Any]] = out
    return produced


def state(module: ModuleType) -> dict[str, Any]:
    """The service's ``GET /state`` document."""
    status, body = module.service._state(None)
    assert status == 200
    document: dict[str, Any] = body
    return document
