"""Inline SVG drawings for the HTML report: fault timeline, saga sequence diagrams, convergence histogram and
the choreography map. Pure functions from data to an ``<svg>`` string; no scripts, no external resources."""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape
from typing import Any

from sagaproof.faultkinds import fault_colour as fault_color
from sagaproof.subjects import pattern_regex as subject_matcher

__all__ = ["fault_color", "subject_matcher"]  # with the module's own functions, used by html.py

PHASE_COLORS = {"workload_start": "#2563eb", "workload_end": "#2563eb", "healed": "#16a34a", "converged": "#059669",
                "checks_done": "#6b7280"}
FONT = "font-family='ui-sans-serif,system-ui,-apple-system,Segoe UI,Roboto,sans-serif'"


def fault_label(f: dict[str, Any]) -> str:
    """'f3 partition inventory' for a fault dict."""
    target = f.get("target")
    return f"{f.get('id', '?')} {f.get('kind', '?')}" + (f" {target}" if target else "")


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _t(x: float) -> str:
    return f"{x:.3f}".rstrip("0").rstrip(".") if x == x else "?"


def _nice_step(span: float, target: int = 8) -> float:
    if span <= 0:
        return 1.0
    raw = span / target
    mag = 10.0 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if raw <= m * mag:
            return float(m * mag)
    return float(10 * mag)


def _axis(x0: float, x1: float, y: float, lo: float, hi: float, unit: str = "s") -> list[str]:
    out = [f"<line x1='{x0}' y1='{y}' x2='{x1}' y2='{y}' stroke='#9ca3af'/>"]
    step = _nice_step(hi - lo)
    v = math.ceil(lo / step) * step
    while v <= hi + 1e-9:
        x = x0 + (v - lo) / (hi - lo or 1) * (x1 - x0)
        out.append(f"<line x1='{x:.1f}' y1='{y}' x2='{x:.1f}' y2='{y + 4}' stroke='#9ca3af'/>"
                   f"<text x='{x:.1f}' y='{y + 16}' font-size='11' fill='#6b7280' text-anchor='middle'>"
                   f"{_t(v)}{unit}</text>")
        v += step
    return out


# --------------------------------------------------------------------------- fault timeline


def timeline(faults: list[dict[str, Any]], phases: list[tuple[float, str]], rate: list[int], bucket: float,
             end: float, violations: list[tuple[float, str]]) -> str:
    """Fault bars (one lane each) over the run, phase markers, message rate and violation ticks."""
    width, left, right = 1100, 230, 20
    lane = 22
    top_rate = 60
    n = len(faults)
    lanes_top = 30 + top_rate + 10
    axis_y = lanes_top + max(n, 1) * lane + (lane if violations else 0) + 8
    height = axis_y + 30
    end = max(end, 1e-3)
    sx = (width - left - right) / end

    def x(t: float) -> float:
        return left + max(0.0, min(end, t)) * sx

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' viewBox='0 0 {width} {height}' "
           f"width='100%' role='img' aria-label='fault timeline' {FONT}>"]
    # message rate as an area chart
    peak = max(rate, default=0)
    out.append(f"<text x='{left - 8}' y='{30 + top_rate / 2}' font-size='12' text-anchor='end' fill='#374151'>"
               f"messages/s (peak {peak / bucket:.0f})</text>" if peak else
               f"<text x='{left - 8}' y='{30 + top_rate / 2}' font-size='12' text-anchor='end' fill='#374151'>"
               f"no messages</text>")
    if peak:
        pts = [f"{x(0):.1f},{30 + top_rate}"]
        for i, c in enumerate(rate):
            y = 30 + top_rate - c / peak * top_rate
            pts.append(f"{x(i * bucket):.1f},{y:.1f}")
            pts.append(f"{x((i + 1) * bucket):.1f},{y:.1f}")
        pts.append(f"{x(len(rate) * bucket):.1f},{30 + top_rate}")
        out.append(f"<polygon points='{' '.join(pts)}' fill='#bfdbfe' stroke='#3b82f6' stroke-width='1'/>")
    if not faults:
        out.append(f"<text x='{left}' y='{lanes_top + 15}' font-size='12' fill='#6b7280'>no faults were injected"
                   f"</text>")
    for i, f in enumerate(faults):
        y = lanes_top + i * lane
        start = float(f.get("start") or 0.0)
        ended = f.get("ended_at")
        stop = float(ended) if ended is not None else start + float(f.get("duration") or 0.0)
        color = fault_color(f.get("kind"))
        label = fault_label(f)
        out.append(f"<text x='{left - 8}' y='{y + 15}' font-size='12' text-anchor='end' fill='#111827'>"
                   f"{_e(label)}</text>")
        w = max(2.0, x(stop) - x(start))
        params = ", ".join(f"{k}={v}" for k, v in (f.get("params") or {}).items())
        out.append(f"<rect x='{x(start):.1f}' y='{y + 3}' width='{w:.1f}' height='{lane - 6}' rx='3' fill='{color}' "
                   f"fill-opacity='0.85'><title>{_e(label)}: {_t(start)}s to {_t(stop)}s"
                   f"{(' (' + _e(params) + ')') if params else ''}</title></rect>")
    if violations:
        y = lanes_top + max(n, 1) * lane
        out.append(f"<text x='{left - 8}' y='{y + 15}' font-size='12' text-anchor='end' fill='#b91c1c' "
                   f"font-weight='600'>violations</text>")
        for t, label in violations[:500]:
            out.append(f"<line x1='{x(t):.1f}' y1='{y + 3}' x2='{x(t):.1f}' y2='{y + lane - 3}' stroke='#b91c1c' "
                       f"stroke-width='2'><title>{_e(label)} at {_t(t)}s</title></line>")
    for t, name in phases:
        color = PHASE_COLORS.get(name, "#6b7280")
        near_end = x(t) > width - right - 90
        out.append(f"<line x1='{x(t):.1f}' y1='22' x2='{x(t):.1f}' y2='{axis_y}' stroke='{color}' "
                   f"stroke-dasharray='4 3'/><text x='{x(t) + (-3 if near_end else 3):.1f}' y='18' font-size='11' "
                   f"fill='{color}' text-anchor='{'end' if near_end else 'start'}'>{_e(name.replace('_', ' '))}</text>")
    out += _axis(left, width - right, axis_y, 0.0, end)
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- sequence diagram


def sequence(events: list[dict[str, Any]], faults_active: list[list[str]], faults: dict[str, dict[str, Any]],
             marks: Iterable[int], receivers: dict[str, list[str]], *, max_rows: int = 80,
             reads: list[dict[str, Any]] | None = None, read_marks: Iterable[float] = ()) -> str:
    """A sequence diagram of one saga's events across services, with the active faults overlaid.

    Each event is an arrow from its producer's lifeline to the lifelines of the services that declare they
    receive that subject (or to the ``nats`` lifeline when none is declared). A fault targeting a service is
    drawn as a tinted band over that service's lifeline for the rows where it was active.

    ``reads`` are the saga's status reads (``read`` history records): each is a row at its time, a dashed arrow
    from a ``client`` lifeline to the service it read (``nats`` for a NATS request or a key-value entry),
    labelled with what it saw (the value and what it means, not found, or fail / unknown and why). A read whose
    ``invoked`` time is in ``read_marks`` is one a check is about and is drawn in red. A read row shows the
    faults active at the event before it.
    """
    marks = set(marks)
    if reads:
        events, faults_active, marks = _with_reads(events, faults_active, marks, reads, set(read_marks))
    shown = events[:max_rows]
    cols = _seq_columns(shown, faults_active[:max_rows], faults, receivers)
    left, colw, top, row = 90, 150, 50, 30
    fault_x = left + len(cols) * colw
    width = fault_x + 260
    height = top + len(shown) * row + 30 + (18 if len(events) > max_rows else 0)
    cx = {c: left + colw * i + colw / 2 for i, c in enumerate(cols)}
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' class='seq' viewBox='0 0 {width} {height}' "
           f"width='{width}' role='img' aria-label='sequence diagram' {FONT}>",
           "<defs><marker id='ah' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='9' markerHeight='9' "
           "markerUnits='userSpaceOnUse' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#374151'/></marker>"
           "<marker id='ahr' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='10' markerHeight='10' "
           "markerUnits='userSpaceOnUse' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#b91c1c'/></marker></defs>"]
    out += _seq_fault_bands(faults_active[:len(shown)], faults, cx, cols, (left, colw, top, row))
    for c in cols:
        x = cx[c]
        out.append(f"<rect x='{x - 60:.1f}' y='6' width='120' height='24' rx='5' fill='#f3f4f6' stroke='#d1d5db'/>"
                   f"<text x='{x:.1f}' y='23' font-size='13' text-anchor='middle' font-weight='600' "
                   f"fill='#111827'>{_e(c)}</text><line x1='{x:.1f}' y1='30' x2='{x:.1f}' y2='{height - 10}' "
                   f"stroke='#d1d5db' stroke-dasharray='2 3'/>")
    out.append(f"<text x='{fault_x + 10}' y='23' font-size='12' fill='#6b7280' font-weight='600'>faults active"
               f"</text>")
    for i, e in enumerate(shown):
        fa = faults_active[i] if i < len(faults_active) else []
        if e.get("kind") == "read":
            out += _seq_read_row(e, i in marks, fa, faults, cx, (top + i * row, row, fault_x))
            continue
        out += _seq_row(e, i in marks, fa, faults, receivers, cx, (top + i * row, row, fault_x))
    if len(events) > max_rows:
        out.append(f"<text x='6' y='{height - 12}' font-size='12' fill='#6b7280'>... {len(events) - max_rows} more "
                   f"events (see the text below)</text>")
    out.append("</svg>")
    return "".join(out)


def _seq_columns(shown: list[dict[str, Any]], faults_active: list[list[str]], faults: dict[str, dict[str, Any]],
                 receivers: dict[str, list[str]]) -> list[str]:
    """The lifelines: each producer and receiver in order of appearance, and ``nats`` first when an event has no
    declared receiver or a fault hit the broker."""
    cols: list[str] = []

    def col(name: str) -> None:
        if name not in cols:
            cols.append(name)

    if any(e.get("kind") == "read" for e in shown):
        col("client")
    for e in shown:
        if e.get("kind") == "read":
            if e["target"] != "nats":
                col(e["target"])
            continue
        col(str(e.get("service") or "?"))
        for r in receivers.get(str(e.get("subject")), []):
            col(r)
    needs_nats = any(e.get("kind") == "read" and e["target"] == "nats" or e.get("kind") != "read"
                     and not receivers.get(str(e.get("subject"))) for e in shown)
    fault_targets = {str(faults.get(f, {}).get("target")) for fa in faults_active for f in fa}
    for t in sorted(fault_targets):
        if t in cols:
            continue
        if t in ("nats", "broker", "None"):
            needs_nats = True
    if needs_nats:
        cols.insert(0, "nats")
    return cols


def _seq_fault_bands(faults_active: list[list[str]], faults: dict[str, dict[str, Any]], cx: dict[str, float],
                     cols: list[str], geometry: tuple[int, int, int, int]) -> list[str]:
    """The fault overlay: contiguous row ranges per fault, on its target's lifeline (or across when not a
    column)."""
    left, colw, top, row = geometry
    out: list[str] = []
    ranges: dict[str, list[list[int]]] = {}
    for i, fa in enumerate(faults_active):
        for fid in fa:
            rs = ranges.setdefault(fid, [])
            if rs and rs[-1][1] == i - 1:
                rs[-1][1] = i
            else:
                rs.append([i, i])
    for fid, rs in ranges.items():
        f = faults.get(fid, {"id": fid})
        target = str(f.get("target"))
        color = fault_color(f.get("kind"))
        for a, b in rs:
            y0, y1 = top + a * row - row / 2 + 4, top + b * row + row / 2 - 4
            if target in cx:
                x0, w = cx[target] - colw / 2 + 8, colw - 16
            elif target in ("nats", "broker") and "nats" in cx:
                x0, w = cx["nats"] - colw / 2 + 8, colw - 16
            else:
                x0, w = left, len(cols) * colw
            out.append(f"<rect x='{x0:.1f}' y='{y0:.1f}' width='{w:.1f}' height='{y1 - y0:.1f}' rx='4' "
                       f"fill='{color}' fill-opacity='0.13' stroke='{color}' stroke-opacity='0.5' "
                       f"stroke-dasharray='3 2'><title>{_e(fault_label(f))}</title></rect>"
                       f"<text x='{x0 + 4:.1f}' y='{y1 - 5:.1f}' font-size='10' fill='{color}'>{_e(fid)} "
                       f"{_e(f.get('kind', ''))}</text>")
    return out


def _seq_row(e: dict[str, Any], bad: bool, fa: list[str], faults: dict[str, dict[str, Any]],
             receivers: dict[str, list[str]], cx: dict[str, float], geometry: tuple[float, int, float]) -> list[str]:
    """One event's row: its time, its arrow from the producer to each receiver, its subject, its faults."""
    y, row, fault_x = geometry
    out: list[str] = []
    src = str(e.get("service") or "?")
    dests = [r for r in receivers.get(str(e.get("subject")), []) if r != src] or ["nats"]
    if src == "nats" and dests == ["nats"]:
        dests = []
    color = "#b91c1c" if bad else "#374151"
    if bad:
        out.append(f"<rect x='2' y='{y - row / 2 + 2}' width='{fault_x - 4}' height='{row - 4}' rx='3' "
                   f"fill='#fee2e2' fill-opacity='0.6'/>")
    out.append(f"<text x='6' y='{y + 4}' font-size='11' fill='{color}' font-weight='{700 if bad else 400}'>"
               f"t={e['t']:.3f}s</text>")
    xs = cx[src]
    for d in dests:
        xd = cx.get(d, xs)
        if abs(xd - xs) < 1:
            continue
        out.append(f"<line x1='{xs:.1f}' y1='{y}' x2='{xd - (6 if xd > xs else -6):.1f}' y2='{y}' "
                   f"stroke='{color}' stroke-width='{2 if bad else 1.3}' "
                   f"marker-end='url(#{'ahr' if bad else 'ah'})'/>")
    out.append(f"<circle cx='{xs:.1f}' cy='{y}' r='4' fill='{color}'/>")
    span = [cx.get(d, xs) for d in dests] + [xs]
    mid = (min(span) + max(span)) / 2 if len(span) > 1 else xs + 40
    out.append(f"<text x='{mid:.1f}' y='{y - 5}' font-size='12' text-anchor='middle' fill='{color}' "
               f"font-weight='{700 if bad else 400}'>{_e(e.get('subject'))}"
               f"<title>{_e(e.get('role', ''))} {_e(e.get('event_id') or '')}</title></text>")
    out += _fault_labels(fa, faults, fault_x, y)
    return out


def _fault_labels(fa: list[str], faults: dict[str, Any], fault_x: float, y: float) -> list[str]:
    """The labels of the (first four) faults active at a row, in the diagram's fault column."""
    out = []
    fx = fault_x + 10
    for fid in fa[:4]:
        f = faults.get(fid, {"id": fid})
        label = fault_label(f)
        out.append(f"<text x='{fx}' y='{y + 4}' font-size='11' fill='{fault_color(f.get('kind'))}' "
                   f"font-weight='600'>{_e(label)}</text>")
        fx += 7 * len(label) + 10
    return out


READ_COLORS = {"success": "#15803d", "abort": "#b45309", "pending": "#6b7280"}


def read_target(request: str) -> str:
    """The lifeline a read goes to: the service of an HTTP read (``GET trips /trips/1``), else ``nats``."""
    parts = str(request or "").split()
    return parts[1] if len(parts) > 2 and parts[0] == "GET" else "nats"


def read_label(r: dict[str, Any]) -> str:
    """What a read saw, in a few words: ``read 'CONFIRMED' (success)``, ``read: not found``, ``read unknown: ...``."""
    outcome = r.get("outcome")
    if outcome == "ok" and not r.get("found"):
        return "read: not found"
    if outcome == "ok":
        return f"read {r.get('value')!r} ({r.get('status') or 'undeclared value'})"
    detail = str(r.get("detail") or "")
    return f"read {outcome}" + (f": {detail[:40]}" if detail else "")


def _with_reads(events: list[dict[str, Any]], faults_active: list[list[str]], marks: set[int],
                reads: list[dict[str, Any]], read_marks: set[float]
                ) -> tuple[list[dict[str, Any]], list[list[str]], set[int]]:
    """The events and the reads as one list of rows in time order (an event before a read at the same time),
    with each row's active faults (a read: those of the event before it) and the marked rows."""
    rows: list[tuple[float, int, int, dict[str, Any]]] = [(float(e.get("t") or 0.0), 0, i, e)
                                                          for i, e in enumerate(events)]
    for j, r in enumerate(reads):
        at = r.get("invoked")
        t = float(at if at is not None else r.get("t") or 0.0)
        rows.append((t, 1, j, {"kind": "read", "t": t, "target": read_target(str(r.get("request") or "")),
                               "label": read_label(r), "status": r.get("status"), "outcome": r.get("outcome"),
                               "found": r.get("found"), "phase": r.get("phase"), "request": r.get("request"),
                               "mark": r.get("invoked") in read_marks}))
    rows.sort(key=lambda x: (x[0], x[1], x[2]))
    out_events: list[dict[str, Any]] = []
    out_faults: list[list[str]] = []
    out_marks: set[int] = set()
    last: list[str] = []
    for n, (_, is_read, i, e) in enumerate(rows):
        if not is_read:
            last = faults_active[i] if i < len(faults_active) else []
            if i in marks:
                out_marks.add(n)
        elif e["mark"]:
            out_marks.add(n)
        out_events.append(e)
        out_faults.append(last)
    return out_events, out_faults, out_marks


def _seq_read_row(e: dict[str, Any], bad: bool, fa: list[str], faults: dict[str, dict[str, Any]],
                  cx: dict[str, float], geometry: tuple[float, int, float]) -> list[str]:
    """One status read's row: its time, a dashed arrow from the client to what it read, and what it saw."""
    y, row, fault_x = geometry
    out: list[str] = []
    if e.get("outcome") == "ok" and e.get("found"):
        color = READ_COLORS.get(str(e.get("status")), "#7c3aed")
    else:
        color = "#6b7280" if e.get("outcome") in ("ok", "unknown") else "#b91c1c"
    if bad:
        out.append(f"<rect x='2' y='{y - row / 2 + 2}' width='{fault_x - 4}' height='{row - 4}' rx='3' "
                   f"fill='#fee2e2' fill-opacity='0.6'/>")
    weight = 700 if bad else 400
    out.append(f"<text x='6' y='{y + 4}' font-size='11' fill='{'#b91c1c' if bad else color}' "
               f"font-weight='{weight}'>t={e['t']:.3f}s</text>")
    xs, xd = cx["client"], cx.get(str(e.get("target")), cx["client"])
    out.append(f"<line class='read' x1='{xs:.1f}' y1='{y}' x2='{xd - (6 if xd > xs else -6):.1f}' y2='{y}' "
               f"stroke='{color}' stroke-width='{2 if bad else 1.3}' stroke-dasharray='5 3' "
               f"marker-end='url(#{'ahr' if bad else 'ah'})'/>")
    out.append(f"<rect x='{xs - 4:.1f}' y='{y - 4}' width='8' height='8' fill='{color}'/>")
    mid = (xs + xd) / 2 if abs(xd - xs) > 1 else xs + 60
    out.append(f"<text class='read' x='{mid:.1f}' y='{y - 5}' font-size='12' text-anchor='middle' fill='{color}' "
               f"font-weight='{weight}'>{_e(e.get('label'))}<title>{_e(e.get('request'))} "
               f"({_e(e.get('phase'))} read)</title></text>")
    out += _fault_labels(fa, faults, fault_x, y)
    return out


# --------------------------------------------------------------------------- histogram


def histogram(values: list[float], marks: dict[str, float | None], *, bins: int = 24) -> str:
    """A histogram of convergence times (seconds), with p50/p95/max markers."""
    width, height, left, right, top, bottom = 900, 260, 60, 20, 20, 40
    if not values:
        return (f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' viewBox='0 0 {width} 60' width='100%' "
                f"{FONT}><text x='10' y='30' font-size='13' fill='#6b7280'>no saga reached an outcome</text></svg>")
    hi = (max(values) or 1e-3) * 1.04
    step = hi / bins
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int(v / step))] += 1
    peak = max(counts)
    pw, ph = width - left - right, height - top - bottom
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' viewBox='0 0 {width} {height}' width='100%' "
           f"role='img' aria-label='convergence histogram' {FONT}>"]
    bw = pw / bins
    for i, c in enumerate(counts):
        if not c:
            continue
        h = c / peak * ph
        out.append(f"<rect x='{left + i * bw + 1:.1f}' y='{top + ph - h:.1f}' width='{bw - 2:.1f}' height='{h:.1f}' "
                   f"fill='#60a5fa'><title>{_t(i * step)}s to {_t((i + 1) * step)}s: {c} sagas</title></rect>")
    out.append(f"<text x='{left - 6}' y='{top + 10}' font-size='11' text-anchor='end' fill='#6b7280'>{peak}</text>"
               f"<text x='{left - 6}' y='{top + ph}' font-size='11' text-anchor='end' fill='#6b7280'>0</text>"
               f"<text x='14' y='{top + ph / 2}' font-size='11' fill='#6b7280' transform='rotate(-90 14 "
               f"{top + ph / 2})' text-anchor='middle'>sagas</text>")
    for n, (name, mv) in enumerate(marks.items()):
        if mv is None:
            continue
        x = left + mv / hi * pw
        flip = x > width - right - 120
        out.append(f"<line x1='{x:.1f}' y1='{top}' x2='{x:.1f}' y2='{top + ph}' stroke='#1f2937' "
                   f"stroke-dasharray='4 3'/><text x='{x + (-4 if flip else 4):.1f}' y='{top + 12 + 14 * n}' "
                   f"font-size='11' fill='#1f2937' text-anchor='{'end' if flip else 'start'}' "
                   f"paint-order='stroke' stroke='#fff' stroke-width='3'>{_e(name)} {_t(mv)}s</text>")
    out += _axis(left, width - right, top + ph, 0.0, hi)
    out.append("</svg>")
    return "".join(out)


# --------------------------------------------------------------------------- choreography map


def choreography_model(observed: dict[tuple[str, str], int], declared: list[dict[str, Any]],
                       not_taken: dict[tuple[str, str], str] | None = None) -> dict[str, Any]:
    """Compare observed (producer, subject) -> count with declared flows.

    Returns ``{"sends": [(service, subject, count, status)], "receives": [(service, subject, status)],
    "undeclared_subjects": [...], "never_seen": [(service, action, subject)], "undeclared": [(service,
    subject, count)]}``; send status is ``ok``, ``undeclared`` (traffic no contract declares) or ``missing``
    (declared, never seen); receive status is ``ok``, ``missing`` (the subject never appeared), ``not_taken``
    (the receiver acknowledged none of its messages) or ``partly`` (only some), from `not_taken`
    ((service, pattern) -> "none" | "some", the consumption check's view).
    """
    dsend = [(str(d.get("service")), str(d.get("subject"))) for d in declared if d.get("action") == "send"]
    drecv = [(str(d.get("service")), str(d.get("subject"))) for d in declared if d.get("action") == "receive"]
    matchers = {p: subject_matcher(p) for _, p in dsend + drecv}
    observed_subjects: dict[str, int] = {}
    for (_, s), c in observed.items():
        observed_subjects[s] = observed_subjects.get(s, 0) + c
    sends = []
    undeclared = []
    for (svc, s), c in sorted(observed.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        ok = any(dsvc == svc and matchers[p].match(s) for dsvc, p in dsend)
        sends.append((svc, s, c, "ok" if ok else "undeclared"))
        if not ok:
            undeclared.append((svc, s, c))
    never_seen = []
    for svc, p in dsend:
        if not any(o_svc == svc and matchers[p].match(s) for (o_svc, s) in observed):
            sends.append((svc, p, 0, "missing"))
            never_seen.append((svc, "send", p))
    receives = []
    for svc, p in drecv:
        seen = any(matchers[p].match(s) for s in observed_subjects)
        taken = (not_taken or {}).get((svc, p))
        status = "missing" if not seen else ("not_taken" if taken == "none" else "partly" if taken else "ok")
        receives.append((svc, p, status))
        if not seen:
            never_seen.append((svc, "receive", p))
    declared_any = [p for _, p in dsend + drecv]
    undeclared_subjects = [s for s in sorted(observed_subjects)
                           if not any(matchers[p].match(s) for p in declared_any)]
    return {"sends": sends, "receives": receives, "never_seen": never_seen, "undeclared": undeclared,
            "undeclared_subjects": undeclared_subjects, "observed_subjects": observed_subjects}


def _chor_node(x: float, y: float, text: str, fill: str, stroke: str, w: int = 140) -> str:
    """A service or subject of the choreography map: a rounded box with its (shortened) name."""
    return (f"<rect x='{x - w / 2}' y='{y - 11:.1f}' width='{w}' height='22' rx='11' fill='{fill}' "
            f"stroke='{stroke}'/><text x='{x}' y='{y + 4:.1f}' font-size='12' text-anchor='middle' "
            f"fill='#111827'>{_e(text if len(text) <= 26 else text[:25] + '…')}</text>")


def _chor_legend(ly: float) -> list[str]:
    """The choreography map's legend: what each kind of edge means."""
    legend = [("#16a34a", "", "declared and seen"), ("#dc2626", "", "seen, not declared by any contract"),
              ("#d97706", "6 4", "declared, never seen"), ("#9ca3af", "", "declared receiver"),
              ("#dc2626", "2 3", "receiver never took it")]
    out: list[str] = []
    lx = 20
    for color, dash, text in legend:
        out.append(f"<line x1='{lx}' y1='{ly}' x2='{lx + 30}' y2='{ly}' stroke='{color}' stroke-width='2.5' "
                   f"stroke-dasharray='{dash}'/><text x='{lx + 36}' y='{ly + 4}' font-size='12' fill='#374151'>"
                   f"{_e(text)}</text>")
        lx += 60 + 7 * len(text)
    return out


def choreography(model: dict[str, Any], *, max_subjects: int = 60) -> str:
    """Senders | subjects | receivers, edges coloured by whether the contracts and the wire agree."""
    sends, receives = model["sends"], model["receives"]
    subjects: list[str] = []
    for _, s, *_ in sends + receives:
        if s not in subjects:
            subjects.append(s)
    subjects.sort()
    hidden = max(0, len(subjects) - max_subjects)
    subjects = subjects[:max_subjects]
    senders = sorted({s for s, *_ in sends})
    receivers = sorted({r for r, *_ in receives})
    row = 30
    n = max(len(subjects), len(senders), len(receivers), 1)
    width, height = 1100, 70 + n * row + (20 if hidden else 0) + 60
    xs, xm, xr = 130, 550, 970

    def ys(items: list[str], i: int) -> float:
        span = n * row
        return 60 + (span - len(items) * row) / 2 + i * row + row / 2

    py = {s: ys(senders, i) for i, s in enumerate(senders)}
    my = {s: ys(subjects, i) for i, s in enumerate(subjects)}
    ry = {s: ys(receivers, i) for i, s in enumerate(receivers)}
    undeclared_subjects = set(model["undeclared_subjects"])
    observed = model["observed_subjects"]
    out = [f"<svg xmlns='http://www.w3.org/2000/svg' class='chart' viewBox='0 0 {width} {height}' width='100%' "
           f"role='img' aria-label='choreography map' {FONT}>",
           f"<text x='{xs}' y='30' font-size='13' font-weight='700' text-anchor='middle' fill='#374151'>publishes"
           f"</text><text x='{xm}' y='30' font-size='13' font-weight='700' text-anchor='middle' fill='#374151'>"
           f"subject</text><text x='{xr}' y='30' font-size='13' font-weight='700' text-anchor='middle' "
           f"fill='#374151'>receives (declared)</text>"]
    style = {"ok": ("#16a34a", "", 1.6), "undeclared": ("#dc2626", "", 2.6), "missing": ("#d97706", "6 4", 2.0)}
    for svc, s, c, status in sends:
        if s not in my:
            continue
        color, dash, w = style[status]
        y0, y1 = py[svc], my[s]
        tip = {"ok": f"{c} messages", "undeclared": f"{c} messages, no contract declares this",
               "missing": "declared, never seen on the wire"}[status]
        out.append(f"<path d='M{xs + 70},{y0:.1f} C{xs + 220},{y0:.1f} {xm - 230},{y1:.1f} {xm - 95},{y1:.1f}' "
                   f"fill='none' stroke='{color}' stroke-width='{w}' stroke-dasharray='{dash}'>"
                   f"<title>{_e(svc)} sends {_e(s)}: {tip}</title></path>")
    for svc, s, status in receives:
        if s not in my:
            continue
        color, dash, w = {"ok": ("#9ca3af", "", 1.4), "not_taken": ("#dc2626", "2 3", 2.6),
                          "partly": ("#dc2626", "8 3", 2.0)}.get(status, style["missing"])
        y0, y1 = my[s], ry[svc]
        tip = {"ok": "", "missing": ": never seen on the wire", "not_taken": ": never took (acknowledged) any of it",
               "partly": ": took only some of it"}[status]
        out.append(f"<path d='M{xm + 95},{y0:.1f} C{xm + 230},{y0:.1f} {xr - 220},{y1:.1f} {xr - 70},{y1:.1f}' "
                   f"fill='none' stroke='{color}' stroke-width='{w}' stroke-dasharray='{dash}'>"
                   f"<title>{_e(svc)} receives {_e(s)}{tip}</title></path>")

    for s in senders:
        out.append(_chor_node(xs, py[s], s, "#eef2ff", "#6366f1"))
    for s in receivers:
        out.append(_chor_node(xr, ry[s], s, "#eef2ff", "#6366f1"))
    for s in subjects:
        if s in undeclared_subjects:
            fill, stroke = "#fee2e2", "#dc2626"
        elif s not in observed and not any(subject_matcher(s).match(o) for o in observed):
            fill, stroke = "#fef3c7", "#d97706"
        else:
            fill, stroke = "#f9fafb", "#9ca3af"
        out.append(_chor_node(xm, my[s], s, fill, stroke, 190))
    out += _chor_legend(height - 30)
    if hidden:
        out.append(f"<text x='{xm}' y='{height - 52}' font-size='12' text-anchor='middle' fill='#6b7280'>... and "
                   f"{hidden} more subjects (see report.json)</text>")
    out.append("</svg>")
    return "".join(out)
