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
    "contracts": {"sagaproof.harness", "sagaproof.chaos", "examples", "shop_common", "trips_common", "servicekit"},
    "chaos": {"sagaproof.harness", "sagaproof.contracts", "examples", "shop_common", "trips_common", "servicekit"},
    "harness": {"examples", "shop_common", "trips_common", "servicekit", "workload", "invariants"},
}


def _package_of(path: Path, root: Path = ROOT) -> list[str]:
    """The dotted package *path* belongs to, as installed: harness/checks/x.py -> sagaproof.harness.checks;
    sagaproof/x.py -> sagaproof; tests/x.py -> tests (for resolving relative imports)."""
    rel = path.relative_to(root)
    parts = list(rel.parts[:-1])
    if parts and parts[0] in PARTS:
        parts = ["sagaproof", *parts]
    return parts


def _imports(path: Path, root: Path = ROOT) -> set[str]:
    """Every module an import statement in *path* names, at any depth (function-level and TYPE_CHECKING imports
    too), relative imports resolved against the file's package as installed; each as 'sagaproof.<part>' or
    its first name."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = _package_of(path, root)
    mods: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            mods.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                anchor = package[: max(0, len(package) - node.level + 1)]
                module = ".".join([*anchor, module] if module else anchor)
            if module:
                mods.append(module)
            if module == "sagaproof" or (node.level and not node.module):
                mods.extend(f"{module}.{alias.name}" if module else alias.name for alias in node.names)
    names: set[str] = set()
    for mod in mods:
        parts = mod.split(".")
        names.add(".".join(parts[:2]) if parts[0] == "sagaproof" and len(parts) > 1 else parts[0])
    return names


def test_the_import_reader_sees_relative_and_function_level_imports(tmp_path: Path):
    (tmp_path / "contracts").mkdir()
    planted = tmp_path / "contracts" / "render.py"
    planted.write_text("def f():\n    from ..harness import config\n    from . import loader\n"
                       "    import sagaproof.chaos.faults\n")
    assert {"sagaproof.harness", "sagaproof.contracts", "sagaproof.chaos"} <= _imports(planted, tmp_path)
    (tmp_path / "harness" / "env").mkdir(parents=True)
    deep = tmp_path / "harness" / "env" / "x.py"
    deep.write_text("from ...contracts.loader import load\n")
    assert "sagaproof.contracts" in _imports(deep, tmp_path)


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


# ---------------------------------------------------------------------------- the floors of harness
# From the top down; a module may import its own floor and the floors below it, never one above.
FLOORS = {"front": 5, "session": 4, "report": 3, "checks": 2, "env": 1}
BOTTOM = {"__init__", "config", "errors", "events", "history", "plugins"}  # harness/<name>.py: what everyone shares


def _floor_of(name: str) -> int | None:
    """The floor of the harness module or package *name* (dotted, under sagaproof.harness); None: on no floor."""
    first = name.split(".")[0] if name else "__init__"
    if first in FLOORS:
        return FLOORS[first]
    if first in BOTTOM:
        return 0
    return None


def _harness_imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, dotted name under sagaproof.harness) of every harness module *path* imports, at any depth
    (function-level and TYPE_CHECKING imports too); `from sagaproof.harness.x import y` names x.y when y is a
    module of ours, else x."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    out: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package[: len(package) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] if base != "sagaproof.harness" else [f"{base}.{a.name}" for a in node.names]
            if base.startswith("sagaproof.harness."):
                for alias in node.names:
                    sub = ROOT / "harness" / Path(*base.split(".")[2:]) / f"{alias.name}.py"
                    if sub.is_file():
                        targets.append(f"{base}.{alias.name}")
        else:
            continue
        for t in targets:
            if t == "sagaproof.harness" or t.startswith("sagaproof.harness."):
                out.append((node.lineno, t[len("sagaproof.harness."):]))
    return out


def floor_offences() -> list[str]:
    offences = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        rel = path.relative_to(ROOT / "harness")
        module = "sagaproof.harness." + ".".join(rel.with_suffix("").parts)
        own = _floor_of(".".join(rel.with_suffix("").parts))
        if own is None:
            offences.append(f"harness/{rel.as_posix()} is on no floor (move it to front/, session/, report/, "
                            f"checks/ or env/, or make it part of the bottom: {', '.join(sorted(BOTTOM - {'__init__'}))})")
            continue
        for line, target in _harness_imports(path, module):
            theirs = _floor_of(target)
            if theirs is None:
                offences.append(f"harness/{rel.as_posix()}:{line} imports sagaproof.harness.{target}, which is on "
                                f"no floor")
            elif theirs > own:
                offences.append(f"harness/{rel.as_posix()}:{line} imports sagaproof.harness.{target}, a floor "
                                f"above its own")
    return offences


def test_harness_floors_import_only_downwards():
    offences = floor_offences()
    assert not offences, "harness imports against its floors:\n" + "\n".join(offences)


def test_the_floor_check_sees_function_level_and_relative_imports(tmp_path: Path):
    """The parser the floor test relies on: imports inside functions and relative ones are found."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from sagaproof.harness.session import engine\n    from ..front import cli\n"
                 "import sagaproof.harness.env.system\n")
    found = {t for _, t in _harness_imports(f, "sagaproof.harness.env.m")}
    assert {"session", "front", "env.system"} <= found
    assert _floor_of("session.engine") == 4 and _floor_of("env") == 1 and _floor_of("config") == 0
    assert _floor_of("chaos_control") is None
