"""Dependencies point one way: harness uses contracts and chaos; those never import harness or each other,
and none of the three knows the example system. Everything is imported as `sagaproof.<part>`: the bare
names `harness`, `contracts` and `chaos` belong to the user's world, not ours."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PARTS = ("harness", "contracts", "chaos")
LEAVES = ("sagaproof/subjects.py", "sagaproof/faultkinds.py")
FORBIDDEN = {
    "contracts": {"sagaproof.harness", "sagaproof.chaos", "examples", "shop_common"},
    "chaos": {"sagaproof.harness", "sagaproof.contracts", "examples", "shop_common"},
    "harness": {"examples", "shop_common", "workload", "invariants"},
}


def _imports(path: Path) -> set[str]:
    """Every absolute module an import statement in *path* names, as 'sagaproof.<part>' or its first name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    mods: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            mods.append(node.module)
            if node.module == "sagaproof":
                mods.extend(f"sagaproof.{alias.name}" for alias in node.names)
    for mod in mods:
        parts = mod.split(".")
        names.add(".".join(parts[:2]) if parts[0] == "sagaproof" and len(parts) > 1 else parts[0])
    return names


def _python_files() -> list[Path]:
    dirs = [*PARTS, "sagaproof", "tests", "examples", "benchmarks"]
    return sorted(p for d in dirs for p in (ROOT / d).rglob("*.py"))


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_what_it_must_not(package: str):
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _imports(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert not offenders, f"{package} imports what it must not: {offenders}"


def test_nothing_imports_the_bare_folder_names():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & set(PARTS)) for p in _python_files()}
    offenders = {k: v for k, v in offenders.items() if v}
    assert not offenders, f"import these as sagaproof.<name>: {offenders}"


@pytest.mark.parametrize("leaf", LEAVES)
def test_shared_leaves_import_nothing_of_ours(leaf: str):
    names = _imports(ROOT / leaf)
    assert not {n for n in names if n == "sagaproof" or n.startswith("sagaproof.")}, names
