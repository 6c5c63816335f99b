"""Merged reports: many seeds' report directories as one (``sagaproof merge``, and a sharded run's summary).

A *run directory* is what ``sagaproof run --report-dir D`` writes (``report.json`` with a ``seed`` and
``checks``). A *merged directory* is what this module writes: ``report.json`` of kind ``sagaproof-merged``
listing every seed with the sub-directory that holds its run (``seed-7/``), ``junit.xml`` with every seed's
test cases (suites and class names prefixed ``seed-7``, so CI test views keep them apart), and
``report.html`` that lists every seed, shows which checks failed across seeds, and links each failing
seed's own report. A sharded run (``--seeds``) writes a merged directory; ``sagaproof merge`` takes run
and merged directories (say, one per CI machine) and writes one merged directory of them all.

Seeds that did not complete (the environment could not start, the run was interrupted) have no run
directory; they are listed as ``error`` entries with their reason and carried through later merges.
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from sagaproof.harness.errors import EXIT_CHECK_FAILED, EXIT_ENVIRONMENT, EXIT_OK, EXIT_USAGE, ConfigError

MERGED_KIND = "sagaproof-merged"
REPORT_FILES = ("report.json", "junit.xml", "report.html")

__all__ = ["MERGED_KIND", "entry_from_outcome", "entry_from_report", "merge_dirs", "write_merged"]


# ---------------------------------------------------------------------------- entries


def replay_of(report: dict[str, Any]) -> str:
    """The command that replays a run: its ``replay`` command when the report has one, else ``command``."""
    replay = report.get("replay")
    if isinstance(replay, dict):
        replay = replay.get("command")
    if isinstance(replay, str) and replay.strip():
        return replay
    return str(report.get("command") or "")


def entry_from_report(report: dict[str, Any], label: str, rel_dir: str | None) -> dict[str, Any]:
    """One seed's line of a merged report, from its run's ``report.json``."""
    checks = [c for c in report.get("checks") or [] if isinstance(c, dict)]
    failed = [c for c in checks if not c.get("ok", True)]
    shrink = report.get("shrink") if isinstance(report.get("shrink"), dict) else None
    verdict = report.get("verdict") if report.get("verdict") in ("pass", "fail") else "error"
    return {
        "seed": report.get("seed"), "label": label, "dir": rel_dir, "verdict": verdict,
        "exit_code": report.get("exit_code", EXIT_OK if verdict == "pass" else EXIT_CHECK_FAILED),
        "first_failure": report.get("first_failure") or (failed[0].get("name") if failed else None),
        "failed_checks": [str(c.get("name")) for c in failed],
        "summaries": {str(c.get("name")): str(c.get("summary") or "") for c in failed},
        "replay": replay_of(report),
        "shrink_replay": shrink.get("command") if shrink else None,
        "duration_s": report.get("duration_s"), "messages_recorded": report.get("messages_recorded"),
        "faults": len(report.get("faults") or []), "system_path": report.get("system_path"),
        "started_at": report.get("started_at"), "error": None,
    }


def entry_from_outcome(outcome: Any, base: Path) -> dict[str, Any]:
    """One seed's line from a sharded run's :class:`harness.session.shards.ShardOutcome`."""
    rel = outcome.dir.relative_to(base).as_posix() if outcome.dir.is_relative_to(base) else str(outcome.dir)
    if outcome.report is not None:
        entry = entry_from_report(outcome.report, outcome.label, rel)
    else:
        entry = {"seed": outcome.seed, "label": outcome.label, "dir": rel, "verdict": "error",
                 "exit_code": outcome.exit_code, "first_failure": None, "failed_checks": [], "summaries": {},
                 "replay": outcome.command, "shrink_replay": None, "duration_s": None, "messages_recorded": None,
                 "faults": 0, "system_path": None, "started_at": None, "error": outcome.error}
    entry["wall_s"] = outcome.wall_s
    return entry


def exit_code_of(entries: list[dict[str, Any]]) -> int:
    """1 if any seed failed a check; else 2 if any seed was bad usage, 3 if any did not complete; else 0."""
    if any(e["verdict"] == "fail" for e in entries):
        return EXIT_CHECK_FAILED
    if any(e["verdict"] == "error" and e.get("exit_code") == EXIT_USAGE for e in entries):
        return EXIT_USAGE
    if any(e["verdict"] == "error" for e in entries):
        return EXIT_ENVIRONMENT
    return EXIT_OK


# ---------------------------------------------------------------------------- reading inputs


def _load_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ConfigError(f"{what}: {path} cannot be read as JSON ({exc}); pass the --report-dir of a sagaproof "
                          f"run, or of a sharded run, whose report.json is intact.") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{what}: {path} is not a sagaproof report (not a JSON object); pass the --report-dir of "
                          f"a sagaproof run or of a sharded run.")
    return data


def _is_run_report(data: dict[str, Any]) -> bool:
    return "seed" in data and isinstance(data.get("checks"), list) and data.get("kind") != MERGED_KIND


def _runs_in(src: Path) -> list[tuple[Path | None, dict[str, Any]]]:
    """(run directory, its report) for every run in a run or merged directory; (None, entry) for error entries."""
    what = f"merge input {src}"
    if not src.is_dir():
        raise ConfigError(f"{what}: no such directory; pass report directories written by `sagaproof run`.")
    top = src / "report.json"
    if top.is_file():
        data = _load_json(top, what)
        if _is_run_report(data):
            return [(src, data)]
        if data.get("kind") == MERGED_KIND and isinstance(data.get("seeds"), list):
            found: list[tuple[Path | None, dict[str, Any]]] = []
            for e in data["seeds"]:
                if not isinstance(e, dict):
                    continue
                sub = src / e["dir"] if e.get("dir") else None
                if sub is not None and (sub / "report.json").is_file():
                    rep = _load_json(sub / "report.json", what)
                    if _is_run_report(rep):
                        found.append((sub, rep))
                        continue
                found.append((None, e))  # a seed that did not complete: carried as its entry
            return found
        raise ConfigError(f"{what}: {top} is not a sagaproof report (it has no seed and checks); pass the "
                          f"--report-dir of a sagaproof run or of a sharded run.")
    subs = sorted(p.parent for p in src.glob("*/report.json"))
    found = []
    for sub in subs:
        rep = _load_json(sub / "report.json", what)
        if _is_run_report(rep):
            found.append((sub, rep))
    if not found:
        raise ConfigError(f"{what}: not a sagaproof report directory (no report.json in it or in its "
                          f"sub-directories); pass the --report-dir of a sagaproof run or of a sharded run.")
    return found


def _copy_run(src: Path, dest: Path, full: bool) -> None:
    if src.resolve() == dest.resolve():
        return
    if dest.exists():
        shutil.rmtree(dest)
    if full:
        shutil.copytree(src, dest, ignore=shutil.ignore_patterns("shrink"))
    else:
        dest.mkdir(parents=True)
        for name in REPORT_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, dest / name)


def merge_dirs(inputs: list[Path], out: Path) -> tuple[list[dict[str, Any]], dict[str, Path]]:
    """Merge run and merged directories into `out`; returns (the seed entries, the written report paths).

    Failing seeds are copied whole (logs, history) into ``out/seed-N/``; passing seeds only their
    three report files. A seed that appears twice (the same seed on two machines) is kept twice, the second
    as ``seed-N-2``. Bad inputs raise ConfigError (exit 2) before anything is written.
    """
    out_r = out.resolve()
    gathered: list[tuple[Path, Path | None, dict[str, Any]]] = []
    for src in inputs:
        if src.resolve() == out_r:
            raise ConfigError(f"merge input {src} is also --report-dir; write the merged report to a new "
                              f"directory.")
        gathered += [(src, d, data) for d, data in _runs_in(src)]
    if not gathered:
        raise ConfigError("merge: the inputs hold no runs; pass report directories written by `sagaproof run`.")
    out.mkdir(parents=True, exist_ok=True)
    used: set[str] = set()
    entries: list[dict[str, Any]] = []
    for src, run_dir, data in gathered:
        seed = data.get("seed")
        base = f"seed-{seed}"
        label, n = base, 1
        while label in used:
            n += 1
            label = f"{base}-{n}"
        used.add(label)
        if run_dir is None:  # an error entry of a merged input: keep what it left (its output.log)
            left = src / data["dir"] if data.get("dir") else None
            entry = dict(data, label=label, dir=None, source=str(src))
            if left is not None and left.is_dir():
                _copy_run(left, out / label, full=True)
                entry["dir"] = label
        else:
            entry = entry_from_report(data, label, label)
            entry["source"] = str(run_dir)
            _copy_run(run_dir, out / label, full=entry["verdict"] != "pass")
        entries.append(entry)
    entries.sort(key=lambda e: (e["seed"] if isinstance(e["seed"], int) else 1 << 62, e["label"]))
    paths = write_merged(out, entries, exit_code=exit_code_of(entries),
                         title=f"sagaproof merge of {len(inputs)} report director{'y' if len(inputs) == 1 else 'ies'}",
                         sources=[str(p) for p in inputs])
    return entries, paths


# ---------------------------------------------------------------------------- writing


def failed_across(entries: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Check name -> the seeds it failed in (most seeds first)."""
    by: dict[str, list[Any]] = {}
    for e in entries:
        for name in e.get("failed_checks") or []:
            by.setdefault(name, []).append(e["seed"])
    return dict(sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0])))


def write_merged(out: Path, entries: list[dict[str, Any]], *, exit_code: int | None = None,
                 wall_s: float | None = None, title: str = "", sources: list[str] | None = None) -> dict[str, Path]:
    """Write ``report.json``, ``junit.xml`` and ``report.html`` of a merged directory into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    code = exit_code_of(entries) if exit_code is None else exit_code
    counts = {v: sum(1 for e in entries if e["verdict"] == v) for v in ("pass", "fail", "error")}
    data = {
        "kind": MERGED_KIND, "version": 1, "title": title,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "verdict": "pass" if code == EXIT_OK else ("fail" if code == EXIT_CHECK_FAILED else "error"),
        "exit_code": code, "seeds_total": len(entries), "passed": counts["pass"], "failed": counts["fail"],
        "errors": counts["error"], "wall_s": round(wall_s, 3) if wall_s is not None else None,
        "failed_checks": failed_across(entries), "sources": sources or [], "seeds": entries,
    }
    paths = {name: out / name for name in REPORT_FILES}
    paths["report.json"].write_text(json.dumps(data, indent=2, default=str) + "\n", encoding="utf-8")
    tree = merged_junit(out, entries)
    ET.indent(tree)
    tree.write(paths["junit.xml"], encoding="utf-8", xml_declaration=True)
    paths["report.html"].write_text(render_merged_html(data), encoding="utf-8")
    return paths


def _sum_attrs(root: ET.Element) -> None:
    suites = root.findall("testsuite")
    for attr in ("tests", "failures", "errors"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in suites)))


def merged_junit(out: Path, entries: list[dict[str, Any]]) -> ET.ElementTree:
    """Every seed's JUnit suites in one document, suite names and class names prefixed with the seed's label."""
    root = ET.Element("testsuites", {"name": "sagaproof (merged)"})
    for e in entries:
        label = e["label"]
        junit = out / e["dir"] / "junit.xml" if e.get("dir") else None
        if junit is not None and junit.is_file():
            try:
                doc = ET.parse(junit).getroot()
            except ET.ParseError:
                doc = None
            if doc is not None:
                suites = [doc] if doc.tag == "testsuite" else doc.findall("testsuite")
                for suite in suites:
                    suite.set("name", f"{label} {suite.get('name', 'sagaproof')}")
                    props = suite.find("properties")
                    if props is None:
                        props = ET.Element("properties")
                        suite.insert(0, props)
                    if not any(p.get("name") == "seed" for p in props.findall("property")):
                        ET.SubElement(props, "property", {"name": "seed", "value": str(e["seed"])})
                    for case in suite.findall("testcase"):
                        case.set("classname", f"{label}.{case.get('classname', 'sagaproof')}")
                    root.append(suite)
                continue
        # No junit.xml to take over: a seed that did not complete (or lost its file) gets one case saying so.
        suite = ET.SubElement(root, "testsuite", {"name": f"{label} sagaproof.run", "tests": "1", "skipped": "0",
                                                  "failures": "0", "errors": "1", "time": "0"})
        case = ET.SubElement(suite, "testcase", {"classname": f"{label}.sagaproof.run", "name": "run", "time": "0"})
        err = ET.SubElement(case, "error", {"message": str(e.get("error") or "the run wrote no junit.xml"),
                                            "type": "error"})
        err.text = f"{e.get('error') or 'no junit.xml'}\n\nreplay: {e.get('replay') or '?'}"
    _sum_attrs(root)
    return ET.ElementTree(root)


def _e(x: Any) -> str:
    return escape(str(x), quote=True)


def _link(e: dict[str, Any], text: str) -> str:
    if not e.get("dir"):
        return _e(text)
    target = "output.log" if e.get("verdict") == "error" else "report.html"  # a seed that did not finish: its output
    return f"<a href='{_e(e['dir'])}/{target}'>{_e(text)}</a>"


def render_merged_html(data: dict[str, Any]) -> str:
    """The merged report page: verdict, checks failed across seeds, each failing seed, every seed."""
    from sagaproof.harness.report.html import CSS

    entries: list[dict[str, Any]] = data["seeds"]
    verdict = data["verdict"]
    by_seed = {e["seed"]: e for e in entries}
    head = (f"{data['failed']} of {data['seeds_total']} seeds failed a check" if data["failed"]
            else f"all {data['passed']} seeds passed" if not data["errors"] else "no seed failed a check")
    if data["errors"]:
        head += f"; {data['errors']} did not complete"
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>sagaproof merged: "
             f"{_e(verdict.upper())}</title><style>{CSS}</style></head><body>",
             f"<div class='verdict {_e(verdict)}'><div class='inner'><h1>{_e(verdict.upper())}</h1>"
             f"<div class='why'>{_e(head)}</div><div class='meta'>{_e(data.get('title') or '')} · generated "
             f"{_e(data['generated_at'])}" + (f" · wall {data['wall_s']:.1f}s" if data.get("wall_s") else "")
             + "</div></div></div><main>"]
    across = data["failed_checks"]
    parts.append("<section><h2>Checks failed across seeds</h2>")
    if across:
        parts.append("<table><tr><th>check</th><th>seeds failed</th><th>which</th></tr>")
        for name, seeds in across.items():
            links = ", ".join(_link(by_seed.get(s, {}), f"seed {s}") for s in seeds)
            parts.append(f"<tr><td>{_e(name)}</td><td>{len(seeds)} of {len(entries)}</td><td>{links}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='muted'>No check failed in any seed.</p>")
    parts.append("</section>")
    bad = [e for e in entries if e["verdict"] != "pass"]
    if bad:
        parts.append("<section><h2>Failing seeds</h2>")
        for e in bad:
            what = (f"first failure: {e['first_failure']}" if e["verdict"] == "fail"
                    else f"did not complete: {e.get('error') or '?'}")
            parts.append(f"<div class='check bad' style='margin-bottom:10px'><div class='name'>"
                         f"{_link(e, 'seed ' + str(e['seed']))} <span class='muted'>{_e(what)}</span></div>")
            if e.get("summaries"):
                parts.append("<ul class='flat'>" + "".join(
                    f"<li><b>{_e(k)}</b>: {_e(v)}</li>" for k, v in e["summaries"].items()) + "</ul>")
            if e.get("replay"):
                parts.append(f"<div class='muted'>replay:</div><pre>{_e(e['replay'])}</pre>")
            if e.get("shrink_replay"):
                parts.append(f"<div class='muted'>minimal fault schedule:</div><pre>{_e(e['shrink_replay'])}</pre>")
            if e.get("dir"):
                parts.append(f"<div>details: {_link(e, e['dir'] + '/')}</div>")
            parts.append("</div>")
        parts.append("</section>")
    parts.append("<section><h2>Every seed</h2><table><tr><th>seed</th><th>verdict</th><th>first failure</th>"
                 "<th>faults</th><th>messages</th><th>run time</th><th>report</th></tr>")
    for e in entries:
        dur = f"{e['duration_s']:.1f}s" if isinstance(e.get("duration_s"), int | float) else ""
        parts.append(f"<tr><td>{_e(e['seed'])}</td><td>{_e(e['verdict'].upper())}</td>"
                     f"<td>{_e(e.get('first_failure') or e.get('error') or '')}</td><td>{_e(e.get('faults') or 0)}</td>"
                     f"<td>{_e(e.get('messages_recorded') if e.get('messages_recorded') is not None else '')}</td>"
                     f"<td>{_e(dur)}</td><td>{_link(e, e['label']) if e.get('dir') else ''}</td></tr>")
    parts.append("</table></section>")
    if data.get("sources"):
        parts.append("<section><h2>Inputs</h2><ul class='flat'>" +
                     "".join(f"<li><code>{_e(s)}</code></li>" for s in data["sources"]) + "</ul></section>")
    parts.append("</main></body></html>\n")
    return "".join(parts)
