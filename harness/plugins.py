"""Plugins: the user's own checks and fault kinds, loaded the same way by every front-end.

A plugin is a Python module that registers what it adds when it is imported: checks with
``sagaproof.register_check`` and fault kinds with ``sagaproof.register_fault_kind`` (see docs/extending.md).
Three places name plugins, and every front-end (``sagaproof run``, ``run --seeds``, ``replay``, pytest) loads
all three:

* the system file's ``[plugins] modules = [...]``: module names (searched first in the system file's
  directory) or paths of ``.py`` files relative to it;
* the command line's ``--plugin MODULE_OR_PATH`` (repeatable; paths relative to the working directory), or
  pytest's ``--sagaproof-plugin``; recorded in ``report.json`` (``options.plugins``, resolved) so a replay and
  each seed of a sharded run load the same;
* the entry-point group ``sagaproof.plugins`` of installed distributions (each names a module, or a function
  called once with no arguments).

Loading one plugin twice is harmless (a module is imported once per process). A plugin that cannot be
imported is a :class:`~harness.errors.ConfigError` (exit 2) naming it, where it was named, and its error.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from sagaproof.harness.errors import ConfigError

__all__ = ["ENTRY_POINT_GROUP", "check_fault_names", "load_entry_points", "load_plugin", "load_plugins", "loaded_plugins",
           "resolve_plugin"]

ENTRY_POINT_GROUP = "sagaproof.plugins"

_LOADED: dict[str, ModuleType | None] = {}  # resolved name or path -> the module (None: an entry point's function)
_entry_points_loaded = False


def loaded_plugins() -> list[str]:
    """Every plugin loaded in this process (resolved: a path of a file, or a module name), in load order."""
    return list(_LOADED)


def _is_path(ref: str) -> bool:
    return ref.endswith(".py") or "/" in ref or "\\" in ref


def resolve_plugin(ref: str, base: Path) -> str:
    """What *ref* names, resolved against *base*: an absolute path of a ``.py`` file (or of a package's
    directory), or a module name as given when no file of that name is under *base*."""
    if _is_path(ref):
        return str((base / ref).resolve())
    own = base / Path(*ref.split("."))
    for candidate in (own.with_suffix(".py"), own / "__init__.py"):
        if candidate.is_file():
            return str(candidate.resolve())
    return ref


def load_plugin(ref: str, *, base: Path, where: str) -> str:
    """Import one plugin (a module name or a path, relative to *base*); returns what it resolved to.

    Raises:
        ConfigError: the module does not exist or raised while it was imported (``where`` says who named it).
    """
    resolved = resolve_plugin(ref, base)
    if resolved in _LOADED:
        return resolved
    try:
        if _is_path(ref):
            module = _import_file(Path(resolved))
        else:
            module = _import_name(ref, base, resolved)
    except (Exception, SystemExit) as exc:
        why = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
        raise ConfigError(f"plugin {ref!r} (named in {where}) could not be imported ({why}); fix the module or "
                          f"remove it from {where}.") from exc
    _LOADED[resolved] = module
    return resolved


def _import_name(name: str, base: Path, resolved: str) -> ModuleType:
    """Import a plugin named as a module: from *base* first (under its own name, so the user's code that
    imports it too gets the same module), else from wherever Python finds it."""
    if resolved != name:  # a file under base
        loaded = sys.modules.get(name)
        if loaded is not None and str(Path(getattr(loaded, "__file__", "") or "").resolve()) != resolved:
            return _import_file(Path(resolved))  # another module of that name is imported: load ours apart
        if str(base.resolve()) not in sys.path:
            sys.path.insert(0, str(base.resolve()))
    return importlib.import_module(name)


def _import_file(path: Path) -> ModuleType:
    """Import a plugin's file (or package directory) under a name of its own; its directory goes on sys.path
    so it can import its neighbours."""
    file = path / "__init__.py" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no such file: {file}")
    folder = str(file.parent.parent if file.name == "__init__.py" else file.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    stem = file.parent.name if file.name == "__init__.py" else file.stem
    name = f"_sagaproof_plugin_{stem}_{hashlib.sha1(str(file).encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise ImportError(f"{file} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_entry_points() -> list[str]:
    """Load every installed plugin (the ``sagaproof.plugins`` entry points), once per process."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return []
    _entry_points_loaded = True
    if not _may_have_entry_points():
        return []  # importlib.metadata costs tens of milliseconds at every start-up; nothing declares the group
    import importlib.metadata

    out: list[str] = []
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        key = f"entry point {ep.name} = {ep.value}"
        if key in _LOADED:
            continue
        dist = getattr(ep, "dist", None)
        where = f"the {ENTRY_POINT_GROUP} entry point {ep.name!r}" + (f" of {dist.name}" if dist else "")
        try:
            target = ep.load()
            if callable(target) and not isinstance(target, ModuleType):
                target()
        except Exception as exc:
            why = f"{type(exc).__name__}: {exc}".strip().splitlines()[0]
            raise ConfigError(f"plugin {ep.value!r} ({where}) could not be loaded ({why}); fix it or uninstall "
                              f"that distribution.") from exc
        _LOADED[key] = target if isinstance(target, ModuleType) else None
        out.append(key)
    return out


def _may_have_entry_points() -> bool:
    """Whether any installed distribution's entry_points.txt mentions the group (a cheap look at the files,
    before importlib.metadata reads them all); True when a path entry cannot be looked at that way."""
    for entry in sys.path:
        folder = Path(entry or ".")
        if not folder.is_dir():
            if folder.exists():
                return True  # a zip or egg: let importlib.metadata read it
            continue
        for meta in (*folder.glob("*.dist-info/entry_points.txt"), *folder.glob("*.egg-info/entry_points.txt")):
            try:
                if ENTRY_POINT_GROUP in meta.read_text(encoding="utf-8", errors="replace"):
                    return True
            except OSError:
                return True
    return False


def load_plugins(refs: Iterable[str], *, base: Path, where: str, entry_points: bool = True) -> list[str]:
    """Load these plugins (and, once, the installed ones); returns what each of *refs* resolved to."""
    if entry_points:
        load_entry_points()
    return [load_plugin(ref, base=base, where=where) for ref in refs]


def check_fault_names(names: Iterable[str] | None, where: str = "--faults") -> None:
    """Every name is a fault kind: a built-in one or a loaded plugin's (checked once the plugins are loaded)."""
    from sagaproof.faultkinds import fault_kind_names

    known = fault_kind_names()
    bad = [n for n in names or () if n not in known]
    if bad:
        raise ConfigError(f"{where}: unknown fault '{bad[0]}'; the faults are: {', '.join(known)} (a plugin's "
                          f"kind is known once [plugins] or --plugin names its module).")
