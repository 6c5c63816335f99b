"""The self-contained HTML report (``report.html``): one file, inline CSS and SVG, no scripts, no network.

Top to bottom, in the order a person needs it: the verdict and the command that reproduces the run; the
checks; the fault timeline; each failing saga as a sequence diagram with the faults overlaid and its text;
contract violations; the consumers (subject x consumer matrix, redelivery coverage, subscriptions, consumers
and reconnects per service); the convergence histogram; the choreography map; the minimal failing schedule; the
services and notes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from html import escape
from typing import Any

from sagaproof.harness.checks.checker import CHECK_TITLES, CheckResult, SagaViolation
from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.reads import READ_CHECK_TITLES, READ_CHECKS
from sagaproof.harness.checks.results import CheckOutcome, RunResult
from sagaproof.harness.report import consumers, svg

MAX_SAGA_DIAGRAMS = 30
MAX_CONTRACT_ROWS = 200
MAX_FAULT_LANES = 80

CSS = """
:root{--pass:#1a7f37;--fail:#cf222e;--error:#9a6700;--ink:#1f2328;--muted:#656d76;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;font:14px/1.5 ui-sans-serif,system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);
background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:0 20px 60px}
.verdict{color:#fff;padding:26px 28px;margin:0 0 18px}
.verdict.pass{background:var(--pass)}.verdict.fail{background:var(--fail)}.verdict.error{background:var(--error)}
.verdict .inner{max-width:1160px;margin:0 auto}
.verdict h1{margin:0;font-size:34px;letter-spacing:.5px}
.verdict .why{font-size:17px;margin-top:4px}
.verdict .meta{opacity:.9;margin-top:8px;font-size:13px}
.cmd{display:block;background:rgba(0,0,0,.25);color:#fff;padding:8px 12px;border-radius:6px;margin-top:12px;
font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap;word-break:break-all}
section{background:#fff;border:1px solid var(--line);border-radius:8px;padding:16px 20px;margin:16px 0}
h2{font-size:19px;margin:0 0 10px}h3{font-size:16px;margin:0 0 6px}
.muted{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));gap:10px}
.check{border:1px solid var(--line);border-left:6px solid var(--pass);border-radius:6px;padding:8px 12px}
.check.bad{border-left-color:var(--fail);background:#fff5f5}
.check .name{font-weight:600}.check .icon{font-weight:700;margin-right:6px}
.check.ok .icon{color:var(--pass)}.check.bad .icon{color:var(--fail)}
.check.skip{border-left-color:var(--line);background:var(--bg)}
.notdone{color:var(--fail);font-weight:600}
.saga{border-left:6px solid var(--fail)}
.tag{display:inline-block;background:#ffebe9;color:var(--fail);border:1px solid #ff818266;border-radius:12px;
padding:0 9px;margin:0 4px 4px 0;font-size:12px;font-weight:600}
.fault{display:inline-block;border-radius:12px;padding:0 9px;margin:0 4px 4px 0;font-size:12px;color:#fff}
dl.v{margin:6px 0 10px}dl.v dt{font-weight:600;margin-top:6px}dl.v dd{margin:0 0 0 16px}
.scroll{overflow-x:auto;border:1px solid var(--line);border-radius:6px;background:#fff;padding:4px}
pre{background:var(--bg);border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto;
font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid var(--line);padding:5px 8px;text-align:left;vertical-align:top}
th{background:var(--bg)}
td code,li code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.stats span{display:inline-block;margin-right:18px}
ul.flat{margin:6px 0;padding-left:20px}
details summary{cursor:pointer;color:var(--muted)}
table.coverage td{min-width:150px;font-size:12px}
td.cov-yes{background:#dafbe1}td.cov-yes.cov-bad{background:#ffebe9}td.cov-no{background:var(--bg)}
"""


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


_TIMELINE_PHASES = ("workload_start", "workload_end", "healed", "converged")


def _schedule_offset(faults: list[dict[str, Any]]) -> float | None:
    """History time of the schedule's zero (from a fault that really started), to place unstarted ones."""
    for f in faults:
        if isinstance(f.get("started_at"), int | float) and isinstance(f.get("late_by"), int | float) \
                and isinstance(f.get("start"), int | float) and f.get("source", "nemesis") == "nemesis":
            return (float(f["started_at"]) - float(f.get("inject_seconds") or 0.0) - float(f["late_by"])
                    - float(f["start"]))
    return None


def _collect(history: Iterable[dict[str, Any]], result: RunResult) -> dict[str, Any]:
    """One pass (plus one for rate buckets) over the history: extent, phases, faults, rate, observed flows.

    Faults are drawn where they really were (``started_at``/``ended_at``, history time); a fault that never
    started is listed at its planned time, marked as not carried out.
    """
    end = 0.0
    phases: list[tuple[float, str]] = []
    fstarts: dict[str, dict[str, Any]] = {}
    fends: dict[str, float] = {}
    observed: dict[tuple[str, str], int] = {}
    for rec in history:
        t = float(rec.get("t") or 0.0)
        end = max(end, t)
        kind = rec.get("kind")
        if kind == "message":
            k = (str(rec.get("producer") or "?"), str(rec.get("subject")))
            observed[k] = observed.get(k, 0) + 1
        elif kind == "phase":
            if rec.get("phase") in _TIMELINE_PHASES:
                phases.append((t, str(rec.get("phase"))))
        elif kind == "fault_start":
            f = dict(rec.get("fault") or {})
            f.setdefault("started_at", t)
            fstarts[str(f.get("id"))] = f
        elif kind == "fault_end":
            fends[str(rec.get("fault_id"))] = t
    faults = [dict(f) for f in result.faults]
    if not faults:
        for fid, f in fstarts.items():
            f["ended_at"] = fends.get(fid)
            faults.append(f)
    offset = _schedule_offset(faults)
    shown = []
    for f in faults:
        d = dict(f)
        d["planned_start"] = f.get("start")
        if isinstance(f.get("started_at"), int | float):
            d["start"] = float(f["started_at"])
        elif offset is not None and isinstance(f.get("start"), int | float):
            d["start"] = offset + float(f["start"])
        d.setdefault("status", "carried out" if f.get("started_at") is not None else "not started")
        shown.append(d)
        end = max(end, float(d.get("ended_at") or 0.0), float(d.get("start") or 0.0))
    end = max(end, 1e-3)
    nb = 200
    bucket = end / nb
    rate = [0] * nb
    for rec in history:
        if rec.get("kind") == "message":
            rate[max(0, min(nb - 1, int(float(rec.get("t") or 0.0) / bucket)))] += 1  # t < 0: clock skew
    shown.sort(key=lambda f: (float(f.get("start") or 0.0), str(f.get("id"))))
    return {"end": end, "phases": phases, "faults": shown, "rate": rate, "bucket": bucket, "observed": observed}


def _headline(result: RunResult) -> str:
    cr = result.check_result
    if result.verdict == "error":
        return "The run could not complete" + (f": {result.notes[0]}" if result.notes else ".")
    parts = []
    if cr is not None:
        bad = len(cr.violated_sagas)
        parts.append(f"{bad} of {cr.sagas_checked} sagas violated a check" if bad
                     else f"all {cr.sagas_checked} sagas passed every saga check")
    failed_inv = [i for i in result.invariants if not i.ok]
    if result.invariants:
        parts.append(f"{len(failed_inv)} of {len(result.invariants)} invariants failed" if failed_inv
                     else f"{len(result.invariants)} invariants held")
    nc = len(result.contract_violations)
    parts.append(f"{nc} contract violation{'s' if nc != 1 else ''}")
    other = [c for c in result.checks if not c.ok]
    if other and result.verdict == "fail" and cr is None:
        parts.append(f"{len(other)} checks failed")
    return "; ".join(parts)


def _check_card(c: CheckOutcome) -> str:
    title = CHECK_TITLES.get(c.name, c.name)
    status = getattr(c, "status", "")
    if status == "not judged":  # applies but judged nothing: it fails the run
        return (f"<div class='check bad notjudged'><span class='icon'>?</span><span class='name'>{_e(title)}</span> "
                f"<span class='muted'>NOT JUDGED</span><div class='muted'>{_e(c.summary)}</div></div>")
    if getattr(c, "skipped", False):
        return (f"<div class='check skip'><span class='icon'>–</span><span class='name'>{_e(title)}</span> "
                f"<span class='muted'>not applicable</span><div class='muted'>{_e(c.summary)}</div></div>")
    return (f"<div class='check {'ok' if c.ok else 'bad'}'><span class='icon'>{'✓' if c.ok else '✗'}</span>"
            f"<span class='name'>{_e(title)}</span> <span class='muted'>{'passed' if c.ok else 'FAILED'}</span>"
            f"<div class='muted'>{_e(c.summary)}</div></div>")


def _receivers(result: RunResult) -> dict[str, list[str]]:
    flows = [(str(d.get("service")), str(d.get("subject"))) for d in result.declared_flows
             if d.get("action") == "receive"]
    return {p: [svc for svc, q in flows if q == p] for _, p in flows}


def _receivers_for(subject: str, patterns: dict[str, list[str]], cache: dict[str, list[str]]) -> list[str]:
    if subject not in cache:
        found: list[str] = []
        for p, svcs in patterns.items():
            if svg.subject_matcher(p).match(subject):
                found += [s for s in svcs if s not in found]
        cache[subject] = found
    return cache[subject]


def _reads_of(history: Iterable[dict[str, Any]], wanted: set[tuple[str, str]]) -> dict[tuple[str, str],
                                                                                     list[dict[str, Any]]]:
    """The status reads (``read`` records) of the wanted saga instances, in time order."""
    out: dict[tuple[str, str], list[dict[str, Any]]] = {}
    if not wanted:
        return out
    for rec in history:
        if rec.get("kind") == "read":
            pair = (str(rec.get("saga")), str(rec.get("key")))
            if pair in wanted:
                out.setdefault(pair, []).append(rec)
    for rs in out.values():
        rs.sort(key=lambda r: float(r.get("invoked") or 0.0))
    return out


def _read_findings(result: RunResult) -> dict[tuple[str, str], list[Finding]]:
    """The status-read checks' findings, by saga instance (most important check first)."""
    out: dict[tuple[str, str], list[Finding]] = {}
    for c in result.checks:
        if c.name in READ_CHECKS:
            for f in c.findings:
                if f.saga is not None and f.key is not None:
                    out.setdefault((f.saga, f.key), []).append(f)
    return out


def _read_saga_section(saga: str, key: str, findings: list[Finding], reads: list[dict[str, Any]],
                       patterns: dict[str, list[str]], cache: dict[str, list[str]], anchor: str) -> str:
    """A saga instance whose status reads a check holds against the wire: its events and its reads, drawn."""
    events = list(findings[0].data.get("events") or [])
    receivers = {str(e.get("subject")): _receivers_for(str(e.get("subject")), patterns, cache) for e in events}
    dl = "".join(f"<dt>{_e(f.check)}: {_e(READ_CHECK_TITLES.get(f.check, ''))}</dt><dd>{_e(f.title)}</dd>"
                 for f in findings)
    text = "\n\n".join(f.text() for f in findings)
    drawing = svg.sequence(events, [[] for _ in events], {}, (), receivers, reads=reads,
                           read_marks={f.t for f in findings if f.t is not None})
    return (f"<section class='saga' id='{_e(anchor)}'><h3>saga <code>{_e(saga)}</code> · key <code>{_e(key)}"
            f"</code></h3><div>{''.join(f'<span class=tag>{_e(CHECK_TITLES.get(f.check, f.check))}</span>' for f in findings)}"
            f"</div><dl class='v'>{dl}</dl><div class='scroll'>{drawing}</div>"
            f"<details open><summary>as text</summary><pre>{_e(text)}</pre></details></section>")


def _saga_section(group: list[SagaViolation], result: RunResult, patterns: dict[str, list[str]],
                  cache: dict[str, list[str]], anchor: str,
                  reads: list[dict[str, Any]] | None = None) -> str:
    v0 = group[0]
    marks = sorted({m for v in group for m in v.marks})
    receivers = {str(e.get("subject")): _receivers_for(str(e.get("subject")), patterns, cache) for e in v0.events}
    fault_ids = list(dict.fromkeys([f for v in group for fa in v.faults_active for f in fa]
                                   + [f for v in group for f in v.faults]))
    chips = "".join(f"<span class='fault' style='background:{svg.fault_color(v0.faults.get(f, {}).get('kind'))}'>"
                    f"{_e(svg.fault_label(v0.faults.get(f, {'id': f})))}</span>" for f in fault_ids)
    dl = "".join(f"<dt>{_e(CHECK_TITLES.get(v.check, v.check))}</dt><dd>expected: {_e(v.expected)}</dd>"
                 f"<dd>but: {_e(v.detail)}</dd>" for v in group)
    text = "\n\n".join(v.message(result.command or None) for v in group)
    return (f"<section class='saga' id='{_e(anchor)}'><h3>saga <code>{_e(v0.saga)}</code> · key <code>{_e(v0.key)}"
            f"</code></h3><div>{''.join(f'<span class=tag>{_e(CHECK_TITLES.get(v.check, v.check))}</span>' for v in group)}"
            f"</div><dl class='v'>{dl}</dl>"
            f"<div>faults active during this saga (and, for one that never finished, until its deadline): "
            f"{chips or '<span class=muted>none</span>'}</div>"
            f"<div class='scroll'>{svg.sequence(v0.events, v0.faults_active, v0.faults, marks, receivers, reads=reads)}"
            f"</div>"
            f"<details open><summary>as text</summary><pre>{_e(text)}</pre></details></section>")


def render_html(result: RunResult, history: Iterable[dict[str, Any]]) -> str:
    """The whole report as one HTML string."""
    info = _collect(history, result)
    cr = result.check_result
    if cr is not None and result.command:
        cr.with_repro(result.command)
    verdict = result.verdict if result.verdict in ("pass", "fail", "error") else "error"
    parts: list[str] = []
    parts += _verdict_section(result, cr, verdict)
    parts += _checks_section(result)
    parts += _faults_sections(cr, info)
    cov = result.coverage
    if cov:
        parts.append(_coverage_section(cov))
    parts += _failing_sagas_section(result, cr, history)
    parts += _contracts_section(result)
    parts.append(consumers.render(result.broker, result.convergence))
    parts += _convergence_section(cr)
    parts += _choreography_section(result, info)
    parts += _closing_sections(result)
    parts.append(f"<p class='muted'>history: {_e(result.history_path or '-')} · exit code {result.exit_code}</p>"
                 f"</main>")
    title = f"sagaproof {verdict.upper()} · seed {result.seed}"
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><title>{_e(title)}</title><style>{CSS}</style></head>"
            f"<body>{''.join(parts)}</body></html>\n")


def _verdict_section(result: RunResult, cr: CheckResult | None, verdict: str) -> list[str]:
    """The verdict first: what a person opening the report needs before anything else."""
    parts: list[str] = []
    # Verdict first: what a person opening the report needs before anything else.
    meta = [f"seed {result.seed}", f"{result.duration_s:.1f}s", f"{result.messages_recorded} messages recorded"]
    if result.started_at:
        meta.insert(0, f"started {result.started_at}")
    if result.workload:
        w = result.workload
        meta.append(f"{w.get('started', '?')} of {w.get('requested', '?')} sagas started")
    if cr is not None:
        meta.append(f"{cr.sagas_checked} sagas checked")
    meta.append(f"system {result.system_path}")
    parts.append(f"<header class='verdict {verdict}' id='verdict'><div class='inner'><h1>{verdict.upper()}</h1>"
                 f"<div class='why'>{_e(_headline(result))}</div><div class='meta'>{_e(' · '.join(meta))}</div>"
                 f"<code class='cmd'>{_e(result.command)}</code></div></header><main>")
    return parts


def _checks_section(result: RunResult) -> list[str]:
    """Every check's card, the invariants', and each failing check's details once."""
    parts: list[str] = []
    checks = result.all_checks()
    cards = "".join(_check_card(c) for c in checks)
    inv = "".join(_check_card(c) for c in result.invariants)
    parts.append(f"<section id='checks'><h2>Checks</h2><div class='grid'>{cards or '<span class=muted>none</span>'}"
                 f"</div>{'<h3 style=margin-top:14px>Invariants</h3><div class=grid>' + inv + '</div>' if inv else ''}")
    # each failing check's details once: the invariants (shown on their own above) and the checks that are not
    # saga checks (those have their own section below)
    failing_details = [d for c in result.invariants + [c for c in checks if c.name not in CHECK_TITLES]
                       if not c.ok for d in c.details]
    if failing_details:
        parts.append("<details open><summary>failure details</summary><pre>" +
                     _e("\n\n".join(failing_details[:50])) + "</pre></details>")
    parts.append("</section>")
    return parts


def _fault_item(f: dict[str, Any]) -> str:
    status = f.get("status", "carried out")
    planned = f.get("planned_start")
    when = (f"{float(f['start']):.3f}s → " + (format(float(f['ended_at']), '.3f') + "s"
            if f.get("ended_at") is not None else "not ended")) if f.get("started_at") is not None else \
        "never active"
    plan = (f" · planned at {float(planned):.3f}s for {float(f.get('duration') or 0):.3f}s on the schedule's clock"
            if isinstance(planned, int | float) and f.get("source", "nemesis") == "nemesis" else "")
    late = (f" · started {float(f['late_by']):.3f}s late" if isinstance(f.get("late_by"), int | float)
            and f["late_by"] >= 0.05 else "")
    bad = status not in ("carried out",)
    return (f"<li><span class='fault' style='background:{svg.fault_color(f.get('kind'))}'>"
            f"{_e(svg.fault_label(f))}</span> {_e(when)}{_e(plan)}{_e(late)}"
            f"{' · ' + _e(json.dumps(f.get('params'))) if f.get('params') else ''}"
            f"{(' · <span class=notdone>' + _e(status) + (': ' + _e(f.get('error')) if f.get('error') else '') + '</span>') if bad else ''}"
            f"</li>")


def _faults_sections(cr: CheckResult | None, info: dict[str, Any]) -> list[str]:
    """The faults not carried out, and the fault timeline with the violations' ticks."""
    parts: list[str] = []
    # Fault timeline.
    vticks: list[tuple[float, str]] = []
    if cr is not None:
        for v in cr.violations:
            i = v.marks[0] if v.marks else (len(v.events) - 1)
            if v.events:
                vticks.append((float(v.events[max(0, i)]["t"]), f"{v.check} {v.saga}/{v.key}"))
    not_done = [f for f in info["faults"] if f.get("status", "carried out") != "carried out"]
    fault_list = "".join(_fault_item(f) for f in (not_done + [f for f in info["faults"] if f not in not_done])[:150])
    if not_done:
        parts.append(f"<section id='not-carried-out'><h2>Faults not carried out ({len(not_done)})</h2>"
                     f"<p class='muted'>Planned, but never injected, or started later than their own length: the "
                     f"run did not test what its schedule says.</p><ul class='flat'>"
                     + "".join(_fault_item(f) for f in not_done[:100]) + "</ul></section>")
    parts.append(f"<section id='timeline'><h2>Fault timeline</h2>"
                 f"<div class='scroll'>{svg.timeline([f for f in info['faults'] if f.get('started_at') is not None][:MAX_FAULT_LANES], info['phases'], info['rate'], info['bucket'], info['end'], vticks)}</div>"
                 f"{'<p class=muted>showing the first ' + str(MAX_FAULT_LANES) + ' faults</p>' if len(info['faults']) > MAX_FAULT_LANES else ''}"
                 f"{'<details><summary>' + str(len(info['faults'])) + ' faults</summary><ul class=flat>' + fault_list + '</ul></details>' if fault_list else ''}"
                 f"</section>")
    return parts


def _failing_sagas_section(result: RunResult, cr: CheckResult | None,
                           history: Iterable[dict[str, Any]] = ()) -> list[str]:
    """The failing sagas: a list, then a sequence diagram each (bounded), with the saga's status reads on it;
    then the sagas whose status reads a read check failed, drawn the same way."""
    parts: list[str] = []
    groups: dict[tuple[str, str], list[SagaViolation]] = {}
    for v in cr.violations if cr is not None else []:
        groups.setdefault((v.saga, v.key), []).append(v)
    by_read = _read_findings(result)
    drawn = set(list(groups)[:MAX_SAGA_DIAGRAMS]) | set(list(by_read)[:MAX_SAGA_DIAGRAMS])
    reads = _reads_of(history, drawn)
    patterns = _receivers(result)
    cache: dict[str, list[str]] = {}
    # Failing sagas.
    if cr is not None and cr.violations:
        parts.append(f"<section id='failing-sagas'><h2>Failing sagas ({len(groups)})</h2>"
                     f"<p class='muted'>Most important first. Each arrow is one event, from the service that "
                     f"published it to the services whose contracts say they receive it; tinted bands are the "
                     f"faults active on that service at that moment; red rows are the events the check is "
                     f"about.</p><ul class='flat'>")
        for i, ((saga, key), group) in enumerate(groups.items()):
            if i >= 200:
                parts.append(f"<li>... {len(groups) - 200} more in report.json</li>")
                break
            parts.append(f"<li><a href='#saga-{i}'>{_e(saga)} {_e(key)}</a>: "
                         f"{_e(', '.join(CHECK_TITLES.get(v.check, v.check) for v in group))}</li>")
        parts.append("</ul></section>")
        for i, group in enumerate(groups.values()):
            if i >= MAX_SAGA_DIAGRAMS:
                parts.append(f"<section><p class='muted'>{len(groups) - MAX_SAGA_DIAGRAMS} more failing sagas are "
                             f"listed above and described in report.json and junit.xml.</p></section>")
                break
            parts.append(_saga_section(group, result, patterns, cache, f"saga-{i}",
                                       reads.get((group[0].saga, group[0].key))))
    if by_read:
        parts.append(f"<section id='read-sagas'><h2>Sagas whose status reads disagree with the wire ({len(by_read)})"
                     f"</h2><p class='muted'>Each arrow is one event, as above; each dashed arrow is one status "
                     f"read, from the client to what it read, with what it saw (green: a success value, orange: an "
                     f"abort value, grey: pending, not found or no answer); red rows are the reads the check is "
                     f"about.</p></section>")
        for i, ((saga, key), findings) in enumerate(by_read.items()):
            if i >= MAX_SAGA_DIAGRAMS:
                parts.append(f"<section><p class='muted'>{len(by_read) - MAX_SAGA_DIAGRAMS} more sagas are described "
                             f"in the checks above and in report.json.</p></section>")
                break
            parts.append(_read_saga_section(saga, key, findings, reads.get((saga, key), []), patterns, cache,
                                            f"read-saga-{i}"))
    return parts


def _contracts_section(result: RunResult) -> list[str]:
    """The contract violations of live messages (bounded)."""
    parts: list[str] = []
    # Contract violations.
    cv = result.contract_violations
    if cv:
        rows = "".join(f"<tr><td><code>{_e(c.get('subject'))}</code></td><td>{_e(c.get('producer') or '?')}</td>"
                       f"<td><code>{_e(c.get('pointer') or '')}</code></td><td>{_e(c.get('message'))}</td>"
                       f"<td><code>{_e(_short(c.get('payload')))}</code></td></tr>" for c in cv[:MAX_CONTRACT_ROWS])
        more = f"<p class='muted'>... {len(cv) - MAX_CONTRACT_ROWS} more in report.json</p>" if len(cv) > MAX_CONTRACT_ROWS else ""
        parts.append(f"<section id='contracts'><h2>Contract violations ({len(cv)})</h2><table><tr><th>subject</th>"
                     f"<th>producer</th><th>where</th><th>problem</th><th>payload</th></tr>{rows}</table>{more}"
                     f"</section>")
    else:
        parts.append("<section id='contracts'><h2>Contract violations</h2><p>None: every recorded message matched "
                     "its contract.</p></section>")
    return parts


def _convergence_section(cr: CheckResult | None) -> list[str]:
    """Seconds from each saga's start event to its outcome."""
    parts: list[str] = []
    # Convergence.
    if cr is not None:
        st = cr.convergence_stats()
        stats = "".join(f"<span><b>{k}</b> {f'{v:.3f}s' if isinstance(v, float) else v}</span>"
                        for k, v in st.items() if v is not None)
        after = (f"<span><b>last outcome after heal</b> {cr.convergence_after_heal:.3f}s</span>"
                 if cr.convergence_after_heal is not None else "")
        parts.append(f"<section id='convergence'><h2>Convergence</h2><p class='muted'>Seconds from each saga's "
                     f"start event to its outcome.</p><div class='stats'>{stats}{after}</div>"
                     f"{svg.histogram(list(cr.convergence.values()), {'p50': st['p50'], 'p95': st['p95']})}</section>")
    return parts


def _choreography_section(result: RunResult, info: dict[str, Any]) -> list[str]:
    """Who published what on the wire, against what the contracts declare."""
    parts: list[str] = []
    # Choreography map.
    not_taken = {(str(x["service"]), str(x["subject"])): str(x["how"])
                 for x in (result.broker or {}).get("not_taken") or []}
    model = svg.choreography_model(info["observed"], result.declared_flows, not_taken)
    items = [f"<li>declared but never seen: <code>{_e(s)}</code> {_e(a)}s <code>{_e(subj)}</code></li>"
             for s, a, subj in model["never_seen"]]
    items += [f"<li>declared receiver never took {'any' if status == 'not_taken' else 'all'} of it: <code>{_e(svc)}</code> "
              f"receives <code>{_e(p)}</code> (see the consumption check)</li>"
              for svc, p, status in model["receives"] if status in ("not_taken", "partly")]
    items += [f"<li>undeclared traffic: <code>{_e(s)}</code> published <code>{_e(subj)}</code> ({c} messages), "
              f"which no contract declares it sends</li>" for s, subj, c in model["undeclared"]]
    note = "" if result.declared_flows else "<p class='muted'>No declared flows were given, so every edge is " \
                                            "shown as undeclared.</p>"
    parts.append(f"<section id='choreography'><h2>Choreography map</h2><p class='muted'>Who published what on the "
                 f"wire, against what the contracts declare.</p>{note}"
                 f"<div class='scroll'>{svg.choreography(model)}</div>"
                 f"{'<ul class=flat>' + ''.join(items[:100]) + '</ul>' if items else '<p>The wire and the contracts agree.</p>'}"
                 f"</section>")
    return parts


def _closing_sections(result: RunResult) -> list[str]:
    """The shrunk schedule, the notable events, the services and the notes."""
    parts: list[str] = []
    if result.shrink:
        sched = result.shrink.get("minimal") or result.shrink.get("schedule") or []
        complete = result.shrink.get("complete", True)
        heading = "Minimal failing schedule" if complete else "Smallest failing schedule found"
        claim = (f"{len(sched)} fault(s) are enough to reproduce the failure:" if complete else
                 f"Smallest found in {result.shrink.get('reruns', len(result.shrink.get('runs') or []))} re-runs, "
                 f"not proven minimal: {len(sched)} fault(s) reproduce the failure:")
        parts.append(f"<section id='shrink'><h2>{heading}</h2><p>{_e(claim)}</p><pre>{_e(json.dumps(sched, indent=2))}</pre>"
                     f"<code class='cmd' style='background:#24292f'>{_e(result.shrink.get('command', ''))}</code>"
                     f"</section>")
    if result.notable_events:
        rows = "".join(f"<tr><td>{float(e.get('t') or 0):.3f}s</td><td><code>{_e(e.get('kind'))}</code></td>"
                       f"<td>{_e(e.get('summary'))}</td></tr>" for e in result.notable_events[:200])
        parts.append(f"<section id='events'><h2>Notable events</h2><p class='muted'>Everything the engine reported "
                     f"for people: faults, failed injections, processes that exited on their own, and any other "
                     f"kind of event.</p><table><tr><th>t</th><th>kind</th><th>what</th></tr>{rows}</table></section>")
    if result.services:
        rows = "".join(f"<tr><td>{_e(s.get('name'))}</td><td>{_e(s.get('port'))}</td><td><code>{_e(s.get('log'))}"
                       f"</code></td></tr>" for s in result.services)
        parts.append(f"<section id='services'><h2>Services</h2><table><tr><th>service</th><th>port</th>"
                     f"<th>log</th></tr>{rows}</table></section>")
    if result.notes:
        parts.append("<section id='notes'><h2>Notes</h2><ul class='flat'>" +
                     "".join(f"<li>{_e(n)}</li>" for n in result.notes) + "</ul></section>")
    return parts


def _coverage_section(cov: dict[str, Any]) -> str:
    """The targeted phase's matrix: consumer x input subject (rows) x window (columns); each cell exercised
    (fault id, saga key, outcome) or not, and why."""
    titles: dict[str, str] = dict(cov.get("windows") or {})
    windows = list(titles)
    rows: dict[tuple[str, str, str], dict[str, dict[str, Any]]] = {}
    for c in cov.get("cells") or []:
        rows.setdefault((str(c.get("service")), str(c.get("consumer") or "-"), str(c.get("subject"))), {})[
            str(c.get("window"))] = c

    def cell(c: dict[str, Any] | None) -> str:
        if c is None:
            return "<td class='muted'>-</td>"
        if c.get("exercised"):
            bad = str(c.get("outcome") or "").startswith("failed")
            return (f"<td class='cov-yes{' cov-bad' if bad else ''}' data-window='{_e(c.get('window'))}'>"
                    f"<b>{_e(c.get('fault_id'))}</b> <code>{_e(c.get('saga_key') or '?')}</code><br>"
                    f"<span class='muted'>{_e(c.get('outcome'))}</span></td>")
        return (f"<td class='cov-no' data-window='{_e(c.get('window'))}'>not exercised: "
                f"<span class='muted'>{_e(c.get('reason'))}</span></td>")

    head = "".join(f"<th title='{_e(titles[w])}'>{_e(titles[w])}</th>" for w in windows)
    body = "".join(f"<tr><td><code>{_e(svc)}</code></td><td><code>{_e(con)}</code></td><td><code>{_e(subj)}</code></td>"
                   + "".join(cell(cells.get(w)) for w in windows) + "</tr>"
                   for (svc, con, subj), cells in rows.items())
    return (f"<section id='coverage'><h2>Fault coverage</h2><p><b>{_e(cov.get('summary'))}</b> windows of the "
            f"targeted phase (consumer x input subject x window). Each fault was aimed at one message (the n-th "
            f"delivery of a subject to a service), so <code>sagaproof replay</code> aims at the same one. A window "
            f"not exercised is not a pass of anything.</p><div class='scroll'><table class='coverage'><tr>"
            f"<th>service</th><th>consumer</th><th>input subject</th>{head}</tr>{body}</table></div></section>")


def _short(payload: Any, limit: int = 160) -> str:
    text = payload if isinstance(payload, str) else json.dumps(payload, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"
