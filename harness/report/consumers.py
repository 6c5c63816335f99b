"""The report's "Consumers" section: the broker's view of the run (see :mod:`harness.checks.consumption`).

A subject x consumer matrix (messages a contract says the service receives, delivered, acknowledged,
redelivered, duplicated on the wire, naked, terminated, core deliveries, faults seen), the redelivery coverage
notes, how the run ended (settled, quiescent, or the wait's limit), and per service the subscriptions and
JetStream consumers it made and how often it reconnected.
"""

from __future__ import annotations

from html import escape
from typing import Any

MAX_ROWS = 300


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _convergence(conv: dict[str, Any] | None) -> str:
    if not conv:
        return ""
    how = conv.get("how")
    if how == "settled":
        text = f"every saga had its outcome and nothing was owed {conv.get('waited', 0):.1f}s after the heal"
    elif how == "quiescent":
        text = (f"the system was quiescent from t={conv.get('quiescent_at') or 0:.3f}s (nothing pending, "
                f"unacknowledged or moving) with {conv.get('owed', 0)} saga(s) or compensation(s) still owed: "
                f"judged final, {conv.get('waited', 0):.1f}s after the heal")
    else:
        text = (f"the wait ended at its limit ({conv.get('waited', 0):.1f}s after the heal) while the system was "
                f"still not quiescent: {conv.get('reason') or '?'}")
    return f"<p><b>End of the run:</b> {_e(text)}</p>"


def render(broker: dict[str, Any] | None, convergence: dict[str, Any] | None) -> str:
    """The section's HTML ('' when the run has no broker view)."""
    if not broker:
        return ""
    rows = []
    for r in broker.get("matrix", [])[:MAX_ROWS]:
        missed = r["declared"] and r["acked"] < r["messages"]
        style = " style='background:#fff5f5'" if missed or r.get("core") else ""
        rows.append(f"<tr{style}><td><code>{_e(r['subject'])}</code></td><td>{_e(r['service'])}</td>"
                    f"<td>{r['messages'] if r['declared'] else '-'}</td><td>{r['delivered']}</td><td>{r['acked']}</td>"
                    f"<td>{r['redelivered']}</td><td>{r['duplicated']}</td><td>{r['naked']}</td>"
                    f"<td>{r['terminated']}</td><td>{r['core']}</td><td>{r['faults']}</td></tr>")
    more = (f"<p class='muted'>... {len(broker['matrix']) - MAX_ROWS} more rows in report.json</p>"
            if len(broker.get("matrix", [])) > MAX_ROWS else "")
    table = ("<table><tr><th>subject</th><th>consumer</th><th title='stored messages its contract says it receives'>"
             "messages</th><th>delivered</th><th>acked</th><th title='delivered again by the server (delivery &gt; 1)'>"
             "redelivered</th><th title='the same delivery seen twice on the wire'>duplicated</th><th>-NAK</th>"
             "<th>+TERM</th><th title='deliveries on core subscriptions (no ack)'>core</th>"
             "<th title='distinct faults active around these messages'>faults</th></tr>" + "".join(rows) + "</table>"
             if rows else "<p class='muted'>No deliveries were observed.</p>")
    cov = broker.get("coverage") or {}
    notes = "".join(f"<li>{_e(n)}</li>" for n in cov.get("notes", []))
    per_stream = "".join(
        f"<li><code>{_e(stream)}</code>: " + ", ".join(
            f"{_e(c)} {v['redeliveries']} of {v['deliveries']} deliveries redelivered" for c, v in sorted(cons.items()))
        + "</li>" for stream, cons in sorted((cov.get("streams") or {}).items()))
    services = []
    for name, s in sorted((broker.get("services") or {}).items()):
        subs = ", ".join(f"<code>{_e(x['subject'])}</code>{' queue ' + _e(x['queue']) if x.get('queue') else ''}"
                         f" <span class='muted'>({_e(x['kind'])})</span>" for x in s.get("subscriptions", [])
                         if x.get("kind") != "inbox") or "<span class='muted'>none besides inboxes</span>"
        cons = "; ".join(f"<code>{_e(c['consumer'])}</code> on {_e(c['stream'])} "
                         f"({'durable' if c.get('durable') else 'ephemeral'}, ack {_e(c.get('ack_policy'))}, ack wait "
                         f"{c.get('ack_wait')}s, max deliver {c.get('max_deliver')}, filter "
                         f"{_e(', '.join(c.get('filter_subjects') or ['>']))})" for c in s.get("consumers", [])) \
            or "<span class='muted'>none</span>"
        link = s.get("link") or {}
        attempts = f" · {link.get('connections')} connection attempts at the link" if link else ""
        services.append(f"<tr><td>{_e(name)}</td><td>{subs}</td><td>{cons}</td><td>{s.get('connections', 0)} "
                        f"({s.get('reconnects', 0)} reconnects){attempts}</td></tr>")
    not_taken = broker.get("not_taken") or []
    nt = "".join(f"<li><code>{_e(x['service'])}</code> took {'none' if x['how'] == 'none' else 'only some'} of the "
                 f"messages on <code>{_e(x['subject'])}</code> its contract says it receives</li>" for x in not_taken)
    return (f"<section id='consumers'><h2>Consumers</h2>{_convergence(convergence)}"
            f"<p class='muted'>What each service's own NATS connection showed (observed on its link) and what the "
            f"server reported. A row per subject and consuming service.</p>"
            f"{'<ul class=flat>' + nt + '</ul>' if nt else ''}<div class='scroll'>{table}</div>{more}"
            f"<h3 style='margin-top:14px'>Redelivery coverage</h3>"
            f"{'<ul class=flat>' + per_stream + '</ul>' if per_stream else ''}"
            f"{'<ul class=flat>' + notes + '</ul>' if notes else '<p class=muted>Every stream had redeliveries.</p>'}"
            f"<h3 style='margin-top:14px'>Subscriptions, consumers and connections per service</h3>"
            f"<table><tr><th>service</th><th>subscriptions</th><th>JetStream consumers</th><th>connections</th></tr>"
            f"{''.join(services)}</table></section>")
