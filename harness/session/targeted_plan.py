"""The targeted phase's plan and its coverage (see :mod:`harness.session.targeted`, which carries the plan out):
the windows and their budgets, the consumers each service created (:func:`consumers_seen`), the plan of windows,
each keyed by a message (:func:`plan_windows`), and the report's matrix of what was exercised
(:func:`coverage`: consumer x input subject x window, each cell exercised or not and why)."""

from __future__ import annotations

import random
import time
from typing import Any

WINDOWS = ("redeliver", "crash_after_ack", "crash_before_ack", "duplicate", "reconnect", "broker_restart")
LATE = "late"  # the window on a step's outcome (only for steps with a timeout: its cells are rows of their own)
PHASES = ("targeted", "random")
ACK_PASS_LIMIT = 1.0  # seconds a crash-after-ack kill waits, at most, for the +ACK to reach the server's side
ACK_WAIT = 5.0  # seconds a window that took a delivery waits for its ack before it takes a later delivery
ACK_SETTLE = 0.05  # and then for the server to read it before the connection goes
RECONNECT_GRACE = 15.0  # seconds a service has, once its link is back, to connect again (no restart meanwhile)
OUTAGE = 3.0  # seconds a reconnect window cuts the link: longer than ping_interval x max_outstanding_pings (2 x 1)
PER_SERVICE = ("reconnect", "crash_after_ack", "crash_before_ack")  # budgeted: once per service and run, in this order
WINDOW_TITLES = {
    "redeliver": "redelivery after the effect",
    "crash_after_ack": "crash after the ack, before the effect",
    "crash_before_ack": "crash after the effect, before the ack",
    "duplicate": "duplicate delivery",
    "reconnect": "connection loss and reconnect",
    "broker_restart": "broker restart and reconnect",
    LATE: "a step that answers too late",
}
BROKER = "nats"  # the lock the random phase's nats_restart takes too (chaos.nemesis.BROKER_TARGET)


def consumers_seen(system: Any, wait: float = 2.0) -> dict[str, list[dict[str, Any]]]:
    """The JetStream consumers each service created, as read on its link (waits up to ``wait`` seconds for
    every service with a link to have shown one; a service that shows none consumes no JetStream input)."""
    broker = getattr(system, "broker", None)
    observers = dict(getattr(broker, "observers", {}) or {})
    limit = time.monotonic() + wait
    while time.monotonic() < limit and not all(o.consumers for o in observers.values()):
        time.sleep(0.05)
    out: dict[str, list[dict[str, Any]]] = {}
    for name, obs in observers.items():
        out[name] = [dict(cfg) for _, cfg in sorted(dict(obs.consumers).items())]
    return out


def late_hold(timeout: float) -> float:
    """How long a late window holds a step's outcome: past the step's time-out by half of it, at least 1 s."""
    return round(timeout + max(1.0, timeout / 2), 3)


def plan_windows(seed: int, consumers: dict[str, list[dict[str, Any]]],
                 late: list[tuple[str, str, float]] | None = None) -> list[dict[str, Any]]:
    """The targeted windows of a run (a pure function of the seed, the consumers seen and the steps with a
    time-out, ``late``: (service, outcome subject, timeout) each).

    Each is ``{"id", "window", "service", "consumer", "stream", "subject", "nth"}``: the ``nth`` first delivery of
    ``subject`` to the service (``subject`` "" means any of its input subjects: the budgeted windows)."""
    out: list[dict[str, Any]] = []
    for service in sorted(consumers):
        cons = [c for c in consumers[service] if str(c.get("ack_policy") or "none") != "none"]
        if not cons:
            continue
        rng = random.Random(f"{seed}:targeted:{service}")
        first = cons[0]
        for c in cons:
            for subject in sorted(set(c.get("filter_subjects") or [">"])):
                for window, nth in (("redeliver", 1 + rng.randrange(2)), ("duplicate", 3 + rng.randrange(2))):
                    out.append({"window": window, "service": service, "consumer": c.get("consumer"),
                                "stream": c.get("stream"), "subject": subject, "nth": nth})
        n = 2 + rng.randrange(3)
        for window in PER_SERVICE:
            out.append({"window": window, "service": service, "consumer": first.get("consumer"),
                        "stream": first.get("stream"), "subject": "", "nth": n})
            n += 4 + rng.randrange(3)  # after the restart (deliveries to a dead service are not counted)
    aimed = [s for s in sorted(consumers) if any(str(c.get("ack_policy") or "none") != "none" for c in consumers[s])]
    if aimed:  # the broker once per run, on a delivery to one service (any: every service must come back)
        rng = random.Random(f"{seed}:targeted:broker")
        service = aimed[rng.randrange(len(aimed))]
        first = next(c for c in consumers[service] if str(c.get("ack_policy") or "none") != "none")
        out.append({"window": "broker_restart", "service": service, "consumer": first.get("consumer"),
                    "stream": first.get("stream"), "subject": "", "nth": 6 + rng.randrange(5)})
    for service, subject, timeout in sorted(set(late or [])):  # the n-th message of the step's outcome, held
        rng = random.Random(f"{seed}:targeted:late:{service}:{subject}")
        out.append({"window": LATE, "service": service, "consumer": None, "stream": None, "subject": subject,
                    "nth": 1 + rng.randrange(3), "hold": late_hold(timeout), "timeout": timeout})
    for i, w in enumerate(out, 1):
        w["id"] = f"w{i:03d}"
    return out


# ---------------------------------------------------------------------------------------------- coverage


def _late_cell(r: dict[str, Any], violations: dict[str, list[str]], unavailable: str | None) -> dict[str, Any]:
    """The cell of a late window: the step's service x its outcome subject (a row of its own)."""
    cell: dict[str, Any] = {"service": r["service"], "consumer": None, "subject": r["subject"], "window": LATE,
                            "exercised": False}
    if unavailable:
        cell["reason"] = unavailable
    elif r.get("exercised"):
        key = r.get("key")
        broke = violations.get(str(key), []) if key is not None else []
        outcome = ("failed " + ", ".join(sorted(set(broke)))) if broke else "saga held every check"
        cell.update(exercised=True, fault_id=r.get("fault_id"), saga_key=key, nth=r.get("nth"),
                    outcome=f"{outcome}; its {r['subject']} held {r.get('hold')}s (the step's time-out is "
                            f"{r.get('timeout')}s)")
    else:
        cell["reason"] = r.get("reason") or (
            f"no message of that subject was published while the window was armed (it was aimed at the "
            f"{r.get('nth')}th; {r.get('seen', 0)} published)")
    return cell


def _put_back(r: dict[str, Any]) -> str:
    """Why a window moved on to later deliveries, for a cell's reason (empty when it never did)."""
    parts = []
    if r.get("deferred"):
        parts.append(f"{r['deferred']} of its deliveries came while another fault held the service")
    if r.get("ack_overdue"):
        parts.append(f"{r['ack_overdue']} were never acknowledged within {ACK_WAIT:g}s")
    if r.get("ack_after_reconnect"):
        parts.append(f"{r['ack_after_reconnect']} were acknowledged only after the service reconnected (its "
                     f"client kept the ack through the outage while the work went on)")
    return f"; {' and '.join(parts)}, so it moved on to later ones" if parts else ""


def coverage(records: list[dict[str, Any]], consumers: dict[str, list[dict[str, Any]]], services: list[str],
             violations: dict[str, list[str]], *, unavailable: str | None = None,
             receives: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The report's coverage matrix: one cell per service x input subject x window.

    ``violations`` maps a saga key to the checks it broke (the cell's outcome). A cell is ``exercised`` (with
    ``fault_id``, ``saga_key``, ``outcome``) or not, with ``reason``."""
    cells, by_cell = _matrix(consumers, services, unavailable, receives)
    firsts = {c["service"]: c for c in reversed(cells) if c["window"] == "broker_restart"}  # each one's first row
    for r in records:
        if r["window"] == LATE:
            cells.append(_late_cell(r, violations, unavailable))
        elif r["window"] == "broker_restart":
            _broker_restart(r, firsts)
        else:
            landed = str(r.get("landed_on") or r.get("subject") or "")
            found = by_cell.get((r["service"], landed, r["window"]))
            if found is not None:
                _window(found, r, landed, violations)
    exercised = sum(1 for c in cells if c["exercised"])
    return {"exercised": exercised, "total": len(cells), "cells": cells,
            "summary": f"fault coverage: {exercised} of {len(cells)}",
            "windows": {w: WINDOW_TITLES[w] for w in WINDOWS}}


def _matrix(consumers: dict[str, list[dict[str, Any]]], services: list[str], unavailable: str | None,
            receives: dict[str, list[str]] | None) -> tuple[list[dict[str, Any]], dict[tuple[str, str, str], dict[str, Any]]]:
    """Every cell, not exercised yet, with the reason it would not be; and the cells by (service, subject, window)."""
    cells: list[dict[str, Any]] = []
    by_cell: dict[tuple[str, str, str], dict[str, Any]] = {}
    for service in services:
        cons = consumers.get(service) or []
        subjects: list[tuple[str, str | None]] = []
        for c in cons:
            for s in sorted(set(c.get("filter_subjects") or [">"])):
                subjects.append((s, str(c.get("consumer")) if c.get("consumer") is not None else None))
        acked = [c for c in cons if str(c.get("ack_policy") or "none") != "none"]
        for s in (receives or {}).get(service, []):
            if all(s != x for x, _ in subjects):
                subjects.append((s, None))
        for subject, consumer in subjects:
            for window in WINDOWS:
                cell: dict[str, Any] = {"service": service, "consumer": consumer, "subject": subject,
                                        "window": window, "exercised": False,
                                        "reason": _not_exercised(window, consumer, bool(acked), unavailable,
                                                                 subjects.index((subject, consumer)) > 0)}
                by_cell[(service, subject, window)] = cell
                cells.append(cell)
    return cells, by_cell


def _not_exercised(window: str, consumer: str | None, acked: bool, unavailable: str | None, later: bool) -> str:
    """Why a cell is not exercised until a window's record says otherwise (`later`: not the service's first subject)."""
    if unavailable:
        return unavailable
    if consumer is None:
        return "no such consumer (the service reads this subject without a JetStream consumer)"
    if not acked:
        return "no such consumer (its consumer acknowledges nothing: ack policy none)"
    if window in PER_SERVICE:
        return "budget (this window is aimed once per service and run, at another subject)"
    if window == "broker_restart":
        return ("budget (the broker is restarted once per run; each service's reconnect is shown at its first "
                "subject)" if later else "the broker was not restarted while the window was armed")
    return "no message of that subject arrived while the window was armed"


def _broker_restart(r: dict[str, Any], firsts: dict[str, dict[str, Any]]) -> None:
    """The broker restart window, shown at each service's first subject: how soon it reconnected."""
    for service, cell in firsts.items():
        if cell.get("consumer") is None:
            continue
        if r.get("exercised") and service in (r.get("reconnected") or {}):
            secs = r["reconnected"][service]
            cell.update(exercised=True, fault_id=r.get("fault_id"), saga_key=None,
                        nth=r.get("landed_nth", r.get("nth")),
                        outcome=f"reconnected {secs:g}s after the broker was back" if secs is not None
                        else f"did not reconnect within {RECONNECT_GRACE:g}s after the broker was back")
            cell.pop("reason", None)
        elif r.get("reason") and not cell["exercised"]:
            cell["reason"] = r["reason"]


def _window(cell: dict[str, Any], r: dict[str, Any], subject: str, violations: dict[str, list[str]]) -> None:
    """A window's record on its cell: exercised (the fault, the saga, its outcome) or why not."""
    if r.get("exercised"):
        key = r.get("key")
        broke = violations.get(str(key), []) if key is not None else []
        outcome = ("failed " + ", ".join(sorted(set(broke)))) if broke else "saga held every check"
        if r["window"] == "redeliver":
            outcome += "; redelivered" if r.get("redelivered_at") is not None else "; no redelivery seen before the window was taken off"
        if r["window"] == "crash_after_ack":
            outcome += (f"; message {subject} (stream seq {r.get('stream_seq')}) was acknowledged before the "
                        f"kill")
        cell.update(exercised=True, fault_id=r.get("fault_id"), saga_key=key, outcome=outcome,
                    stream_seq=r.get("stream_seq"), nth=r.get("landed_nth", r.get("nth")))
        cell.pop("reason", None)
    elif r.get("reason"):
        cell["reason"] = r["reason"]
    elif isinstance(r.get("seen"), int) and r["seen"] < int(r.get("nth") or 1):
        cell["reason"] = (f"no message of that subject arrived while the window was armed (it was aimed at "
                          f"delivery {r.get('nth')}; {r['seen']} arrived)" if r["subject"] else
                          f"budget (aimed once per service at its delivery {r.get('nth')}, any subject; "
                          f"{r['seen']} arrived while it was armed)") + _put_back(r)
    elif r.get("delivered_at") is not None:
        cell["reason"] = "its delivery arrived, but no acknowledgement of it reached the link while the window was armed (another fault may have cut the service off first)"
