"""The public API: what the docs tell users to import from ``sagaproof`` is exactly ``sagaproof.__all__``.

Every name the README and docs/*.md use from ``sagaproof`` (``from sagaproof import X`` and ``sagaproof.X`` in
their code samples and text) must be exported, every exported name must be documented, and no doc imports
from the harness's floors (``sagaproof.harness.*``: internal). ``sagaproof.contracts`` and ``sagaproof.chaos``
are the two standalone parts, with public modules of their own.
"""

from __future__ import annotations

import re

import sagaproof
from tests.conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FROM_IMPORT = re.compile(r"^\s*from sagaproof import (?:\(([^)]*)\)|([^\n]+))", re.M)
ATTRIBUTE = re.compile(r"(?<![\w./-])sagaproof\.([A-Za-z_]\w*)")
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)
INLINE = re.compile(r"`(sagaproof\.[A-Za-z_]\w*)")
PARTS = {"harness", "contracts", "chaos", "faultkinds", "subjects", "__all__", "toml", "plugins"}  # modules, files, the entry-point group


def _names(code: str) -> set[str]:
    """The names of sagaproof a piece of Python code uses."""
    names = {n.strip().split(" as ")[0] for m in FROM_IMPORT.finditer(code)
             for n in (m.group(1) or m.group(2)).replace("\n", ",").split(",")}
    return (names | {m.group(1) for m in ATTRIBUTE.finditer(code)}) - PARTS - {""}


def _documented() -> dict[str, set[str]]:
    """name -> the docs that use it as part of sagaproof's API (in a Python sample, or as `sagaproof.NAME`)."""
    out: dict[str, set[str]] = {}
    for doc in DOCS:
        text = doc.read_text()
        names = {n for block in PYTHON_BLOCK.findall(text) for n in _names(block)}
        names |= {n for span in INLINE.findall(text) for n in _names(span)}
        for name in names:
            out.setdefault(name, set()).add(doc.name)
    return out


def test_every_documented_name_resolves_and_every_exported_name_is_documented():
    documented = _documented()
    unknown = {n: docs for n, docs in documented.items() if n not in sagaproof.__all__}
    assert not unknown, f"the docs use names sagaproof does not export: {unknown}"
    for name in documented:
        assert getattr(sagaproof, name) is not None
    undocumented = sorted(set(sagaproof.__all__) - set(documented) - {"__version__"})
    assert not undocumented, f"exported but documented nowhere (document them or stop exporting them): {undocumented}"


def test_no_doc_imports_the_harness_floors():
    offenders = [f"{doc.name}: {line.strip()}" for doc in DOCS for line in doc.read_text().splitlines()
                 if re.search(r"(from|import) sagaproof\.harness\b", line)]
    assert not offenders, "import from sagaproof (the public API) instead:\n" + "\n".join(offenders)


def test_the_scanner_sees_both_spellings():
    code = "from sagaproof import (CheckContext,\n    Finding)\nfrom sagaproof import Event as E\nx = sagaproof.run(spec)\n"
    assert _names(code) == {"CheckContext", "Finding", "Event", "run"}


def test_the_pytest_handle_and_its_checks_result_are_typed_member_by_member():
    """No ``__getattr__`` to fall back on (a typo is a type error, not an ``Any``): every public member of
    ``SessionHandle`` and ``ChecksResult`` declares its type, and what the delegation used to reach is a member."""
    for cls in (sagaproof.SessionHandle, sagaproof.ChecksResult):
        assert "__getattr__" not in vars(cls), cls
        for name, member in vars(cls).items():
            fn = member.fget if isinstance(member, property) else member
            if name.startswith("_") or not callable(fn):
                continue
            returns = fn.__annotations__.get("return")
            assert returns not in (None, "Any"), f"{cls.__name__}.{name} returns {returns!r}"
    result = sagaproof.ChecksResult([], sagaproof.CheckResult(convergence={"k": 0.5}, messages_seen=3), seed=1,
                                    repro="pytest", window=sagaproof.Window())
    assert (result.convergence, result.messages_seen, result.pending) == ({"k": 0.5}, 3, [])
    assert result.summary("termination") == "0 of 0 sagas passed"
    for name in ("broker", "loop", "replicas", "services", "chaos", "nats_url", "system"):
        assert hasattr(sagaproof.SessionHandle, name), name
    try:
        result.no_such_thing  # noqa: B018 - an unknown name is an AttributeError, not the checker's
    except AttributeError:
        pass
    else:
        raise AssertionError("ChecksResult answered an attribute it does not have")
