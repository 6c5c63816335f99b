"""JUnit XML for CI test views: one testcase per check and per invariant, one per violated saga.

Layout (as Jenkins, GitLab and GitHub test reporters read it): ``<testsuites>`` holding the suites
``sagaproof.checks`` (each check; a failed check carries its summary and every violation's text),
``sagaproof.invariants`` and ``sagaproof.sagas`` (one testcase per violated saga instance, named
``<saga> <key>``, whose failure text is the full message with the reproduce command). An ``error`` verdict adds
a ``run`` testcase with an ``<error>``.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from sagaproof.harness.checks.checker import CHECK_TITLES, SagaViolation
from sagaproof.harness.checks.results import CheckOutcome, RunResult

_BAD_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _clean(text: str) -> str:
    return _BAD_XML.sub("?", text)


def _suite(root: ET.Element, name: str, timestamp: str) -> ET.Element:
    return ET.SubElement(root, "testsuite", {"name": name, "timestamp": timestamp})


def _case(suite: ET.Element, classname: str, name: str, *, failure: tuple[str, str, str] | None = None,
          error: tuple[str, str] | None = None, out: str = "") -> None:
    case = ET.SubElement(suite, "testcase", {"classname": classname, "name": _clean(name), "time": "0"})
    if failure:
        f = ET.SubElement(case, "failure", {"message": _clean(failure[0]), "type": failure[1]})
        f.text = _clean(failure[2])
    if error:
        e = ET.SubElement(case, "error", {"message": _clean(error[0]), "type": "error"})
        e.text = _clean(error[1])
    if out:
        ET.SubElement(case, "system-out").text = _clean(out)


def _outcome_case(suite: ET.Element, classname: str, c: CheckOutcome, command: str) -> None:
    if getattr(c, "status", "") == "not judged":  # applies, judged nothing: fails the run, so a failure here
        _case(suite, classname, c.name, failure=(c.summary, "not judged", c.summary))
        return
    if getattr(c, "skipped", False):  # not applicable
        case = ET.SubElement(suite, "testcase", {"classname": classname, "name": _clean(c.name), "time": "0"})
        ET.SubElement(case, "skipped", {"message": _clean(c.summary)})
        return
    if c.ok:
        _case(suite, classname, c.name, out=c.summary)
    else:
        body = "\n\n".join(c.details) or c.summary
        if command and command not in body:
            body += f"\n\nreproduce: {command}"
        _case(suite, classname, c.name, failure=(c.summary or f"{c.name} failed", c.name, body))


def _finish(suite: ET.Element) -> None:
    cases = suite.findall("testcase")
    suite.set("tests", str(len(cases)))
    suite.set("failures", str(sum(1 for c in cases if c.find("failure") is not None)))
    suite.set("errors", str(sum(1 for c in cases if c.find("error") is not None)))
    suite.set("skipped", str(sum(1 for c in cases if c.find("skipped") is not None)))
    suite.set("time", "0")


def junit_tree(result: RunResult) -> ET.ElementTree:
    """Build the JUnit XML tree for a run."""
    root = ET.Element("testsuites", {"name": "sagaproof"})
    ts = result.started_at or ""
    checks = _suite(root, "sagaproof.checks", ts)
    props = ET.SubElement(checks, "properties")
    for k, prop in (("seed", result.seed), ("command", result.command), ("system", result.system_path),
                    ("verdict", result.verdict)):
        ET.SubElement(props, "property", {"name": k, "value": _clean(str(prop))})
    if result.verdict == "error":
        _case(checks, "sagaproof.run", "run", error=(result.notes[0] if result.notes else "the run did not complete",
                                                      "\n".join(result.notes)))
    for c in result.all_checks():
        _outcome_case(checks, "sagaproof.checks", c, result.command)
    _finish(checks)
    if result.invariants:
        inv = _suite(root, "sagaproof.invariants", ts)
        for c in result.invariants:
            _outcome_case(inv, "sagaproof.invariants", c, result.command)
        _finish(inv)
    cr = result.check_result
    if cr is not None and cr.violations:
        sagas = _suite(root, "sagaproof.sagas", ts)
        groups: dict[tuple[str, str], list[SagaViolation]] = {}
        for v in cr.violations:
            groups.setdefault((v.saga, v.key), []).append(v)
        for (saga, key), group in groups.items():
            checks_failed = ", ".join(CHECK_TITLES.get(v.check, v.check) for v in group)
            text = "\n\n".join(v.message(result.command or None) for v in group)
            _case(sagas, f"sagaproof.sagas.{saga}", f"{saga} {key}",
                  failure=(f"saga '{saga}' key {key}: {checks_failed}", group[0].check, text))
        _finish(sagas)
    suites = root.findall("testsuite")
    for attr in ("tests", "failures", "errors"):
        root.set(attr, str(sum(int(s.get(attr, "0")) for s in suites)))
    root.set("time", f"{result.duration_s:.3f}")
    return ET.ElementTree(root)


def write_junit(result: RunResult, path: Path) -> Path:
    """Write ``junit.xml`` to ``path``."""
    tree = junit_tree(result)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)
    return path
