"""Load and validate the system file (`sagaproof.toml` or `[tool.sagaproof]` in `pyproject.toml`).

The file describes the system under test: NATS, the services, the sagas, the workload, the invariants
and the chaos defaults. It is written by hand, so every mistake is reported as one sentence that names
the file, the key and the fix (:class:`~harness.errors.ConfigError`, exit code 2). The result is a tree
of frozen dataclasses; nothing else in the harness reads TOML.

The package's parts: :mod:`.spec` (the dataclasses), :mod:`.fields` (reading a field), :mod:`.services`
([nats], [services], attach mode), :mod:`.sagas` ([sagas], [workload], [chaos], [plugins], [reads]); this module
finds, reads and validates the file as a whole.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from sagaproof.harness.config.fields import (
    _check_keys,
    _Ctx,
    _duration,
    _get,
    _str_list,
    _suggest,
    expand,
    parse_duration,
)
from sagaproof.harness.config.sagas import (
    _check_callable_ref,
    _load_chaos,
    _load_plugins,
    _load_reads,
    _load_saga,
    _load_workload,
    _role_text,
    saga_roles,
)
from sagaproof.harness.config.services import (
    COMMAND_KINDS,
    COMMAND_PLACEHOLDERS,
    NATS_ACCESS_KEYS,
    _is_attached,
    _load_attached_service,
    _load_env,
    _load_nats,
    _load_nats_access,
    _load_service,
)
from sagaproof.harness.config.spec import (
    DISCARDS,
    RETENTIONS,
    STATUS_VIAS,
    SYSTEM_FILE,
    ChaosSpec,
    ConsumerSpec,
    InvariantSpec,
    NatsSpec,
    PactsSpec,
    PactTrigger,
    QuiescenceSpec,
    ReadsSpec,
    ReadySpec,
    SagaSpec,
    ServiceSpec,
    StatusReadSpec,
    StepSpec,
    StreamSpec,
    SystemSpec,
    WorkloadSpec,
    field_at,
)
from sagaproof.harness.errors import ConfigError

__all__ = [
    "COMMAND_KINDS",
    "COMMAND_PLACEHOLDERS",
    "ChaosSpec",
    "ConsumerSpec",
    "DISCARDS",
    "InvariantSpec",
    "NATS_ACCESS_KEYS",
    "NatsSpec",
    "PLACEHOLDERS",
    "PactTrigger",
    "PactsSpec",
    "QuiescenceSpec",
    "RETENTIONS",
    "ReadsSpec",
    "ReadySpec",
    "STATUS_VIAS",
    "SYSTEM_FILE",
    "SagaSpec",
    "ServiceSpec",
    "StatusReadSpec",
    "StepSpec",
    "StreamSpec",
    "SystemSpec",
    "WorkloadSpec",
    "expand",
    "field_at",
    "find_system_file",
    "load_callable",
    "load_system_file",
    "parse_duration",
    "parse_system",
    "saga_roles",
]


def find_system_file(location: str | Path) -> tuple[Path, dict[str, Any], str]:
    """Locate the system file for a directory or file path; return (path, raw table, display name)."""
    p = Path(location)
    if p.is_dir():
        if (p / SYSTEM_FILE).is_file():
            p = p / SYSTEM_FILE
        elif (p / "pyproject.toml").is_file():
            p = p / "pyproject.toml"
        else:
            raise ConfigError(f"{location}: no {SYSTEM_FILE} (or pyproject.toml with [tool.sagaproof]) here; "
                              f"create one (see docs/system-file.md) or pass the directory that holds it.")
    elif not p.exists():
        raise ConfigError(f"{location}: no such file or directory; pass the directory that holds {SYSTEM_FILE}.")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: is not valid TOML ({exc}); fix the syntax at that line.") from exc
    except UnicodeDecodeError as err:
        raise ConfigError(f"{p}: is not UTF-8 text; save it as UTF-8.") from err
    if p.name == "pyproject.toml":
        table = data.get("tool", {}).get("sagaproof")
        if table is None:
            raise ConfigError(f"{p}: has no [tool.sagaproof] table; add one or write a {SYSTEM_FILE}.")
        return p, table, f"{p} [tool.sagaproof]"
    return p, data, str(p)


def load_system_file(location: str | Path) -> SystemSpec:
    """Load the system file from a directory (or file) and validate it into a :class:`SystemSpec`."""
    path, raw, display = find_system_file(location)
    return parse_system(raw, path, display)


def parse_system(raw: dict[str, Any], path: Path, display: str | None = None) -> SystemSpec:
    """Validate an already-parsed system table."""
    ctx = _Ctx(path, display or str(path))
    root = path.resolve().parent
    _check_keys(ctx, "", raw, ["nats", "env", "services", "sagas", "workload", "invariants", "chaos", "schemas",
                               "pacts", "quiescence", "reads", "contracts", "plugins"])

    def table(key: str) -> dict[str, Any]:
        found: dict[str, Any] = _get(ctx, "", raw, key, dict, {})  # _get checked it is a dict
        return found

    plugins = _load_plugins(ctx, root, table("plugins"))

    nats = _load_nats(ctx, table("nats"))
    nats = _load_nats_access(ctx, root, table("nats"), nats)
    shared_env = _load_env(ctx, "env", table("env"))
    services_raw = table("services")
    if not services_raw:
        raise ctx.fail("services", "no services are defined; add at least one [services.NAME] table with a command.")
    services = {n: (_load_attached_service(ctx, root, n, s, nats) if _is_attached(s)
                    else _load_service(ctx, root, n, s, shared_env))
                for n, s in services_raw.items()}
    for n, declared in services.items():
        for proc in declared.replica_names():
            if proc != n and proc in services:
                raise ctx.fail(f"services.{n}.replicas", f"names its replicas {n}-1 .. {n}-{declared.replicas}, but "
                                                         f"service '{proc}' is declared too; rename one of them.")
    sagas = {n: _load_saga(ctx, n, s, services) for n, s in table("sagas").items()}
    workload = _load_workload(ctx, table("workload"), services, sagas)
    inv_raw = dict(table("invariants"))
    inv_timeout = _duration(ctx, "invariants", inv_raw, "timeout", 20.0)
    inv_raw.pop("timeout", None)
    invariants = tuple(InvariantSpec(n, _check_callable_ref(ctx, f"invariants.{n}", t)) for n, t in inv_raw.items())
    chaos = _load_chaos(ctx, table("chaos"))
    schemas = []
    for i, s in enumerate(_get(ctx, "", raw, "schemas", list, [])):
        where = f"schemas[{i}]"
        if not isinstance(s, dict):
            raise ctx.fail(where, 'must be a table: [[schemas]] subject = "orders.created", schema = "x.json".')
        _check_keys(ctx, where, s, ["subject", "schema", "producers", "consumers"])
        sp = root / _get(ctx, where, s, "schema", str, required=True, example='schema = "schemas/order.json"')
        if not sp.is_file():
            raise ctx.fail(f"{where}.schema", f"file {sp} does not exist; give a path relative to {root}.")
        for role in ("producers", "consumers"):
            for svc in _str_list(ctx, where, s, role):
                if svc not in services:
                    raise ctx.fail(f"{where}.{role}", f"names service '{svc}', which is not defined; "
                                                      f"{_suggest(svc, sorted(services))}")
        schemas.append({"subject": _get(ctx, where, s, "subject", str, required=True,
                                        example='subject = "orders.created"'),
                        "schema": sp, "producers": list(_str_list(ctx, where, s, "producers")),
                        "consumers": list(_str_list(ctx, where, s, "consumers"))})
    pacts = _load_pacts(ctx, root, table("pacts"), services)
    q = table("quiescence")
    _check_keys(ctx, "quiescence", q, ["hold", "timeout"])
    q_timeout = _duration(ctx, "quiescence", q, "timeout", -1.0)
    quiescence = QuiescenceSpec(_duration(ctx, "quiescence", q, "hold", 1.0), q_timeout if q_timeout >= 0 else None)
    ct = table("contracts")
    _check_keys(ctx, "contracts", ct, ["accept_undecided"])
    accept_undecided = tuple(_str_list(ctx, "contracts", ct, "accept_undecided"))
    spec = SystemSpec(path=path, root=root, nats=nats, services=services, sagas=sagas, workload=workload,
                      invariants=invariants, invariant_timeout=inv_timeout, chaos=chaos,
                      contract_schemas=tuple(schemas), pacts=pacts, env=shared_env, quiescence=quiescence,
                      reads=_load_reads(ctx, table("reads"), sagas),
                      accept_undecided=accept_undecided, plugins=plugins)
    if sagas:
        _check_sagas_against_contracts(ctx, spec)
    return spec


def _check_sagas_against_contracts(ctx: _Ctx, spec: SystemSpec) -> None:
    """Model mistakes the contracts reveal: a step whose service never sends its success subject, and a saga
    subject that no contract sends. Skipped when the contracts cannot be loaded (their own checks say why)
    and, for the second, when some service has no contract (the subject may be its)."""
    sources = spec.contract_sources()
    if not sources and not spec.contract_schemas:
        return
    from sagaproof import contracts

    try:
        cs = contracts.load(sources, [contracts.SubjectSchema(subject=s["subject"], schema_path=s["schema"],
                                                              producers=s["producers"], consumers=s["consumers"])
                                      for s in spec.contract_schemas])
    except contracts.ContractsError:
        return
    with_contract = set(sources) | {p for s in spec.contract_schemas for p in s["producers"]}
    covered = set(spec.services) <= with_contract
    sent = sorted({ch.subject for ch in cs.channels.values() if ch.producers})
    for saga in spec.sagas.values():
        where = f"sagas.{saga.name}"
        for subject, roles in saga_roles(saga).items():
            senders = cs.sender_of(subject)
            role, step_name = roles[0]
            if not senders:
                if covered:
                    close = difflib.get_close_matches(subject, sent, n=1)
                    hint = f"did you mean '{close[0]}'? " if close else ""
                    raise ctx.fail(where, f"subject '{subject}' ({_role_text(role, step_name)}) is sent by no service's "
                                          f"contract; {hint}fix the subject, or declare a send operation for it in the "
                                          f"contract of the service that publishes it.")
                continue
            for role, step_name in roles:
                if role != "success" or step_name is None:
                    continue
                st = saga.step(step_name)
                if st.service in with_contract and st.service not in senders:
                    raise ctx.fail(f"{where}.steps.{st.name}.service",
                                   f"service '{st.service}' never sends '{subject}' per its contracts, but "
                                   f"{' and '.join(repr(x) for x in senders)} "
                                   f"{'does' if len(senders) == 1 else 'do'}; set service = \"{senders[0]}\" or add a "
                                   f"send operation for '{subject}' to {st.service}'s contract.")


def _load_pacts(ctx: _Ctx, root: Path, raw: dict[str, Any], services: dict[str, ServiceSpec]) -> PactsSpec:
    _check_keys(ctx, "pacts", raw, ["dir", "triggers"])
    d = _get(ctx, "pacts", raw, "dir", str)
    triggers = []
    for i, t in enumerate(_get(ctx, "pacts", raw, "triggers", list, [])):
        where = f"pacts.triggers[{i}]"
        if not isinstance(t, dict):
            raise ctx.fail(where, "must be a table with description (or state), capture, and http or publish.")
        _check_keys(ctx, where, t, ["description", "state", "capture", "http", "publish", "timeout"])
        desc, state = _get(ctx, where, t, "description", str), _get(ctx, where, t, "state", str)
        if desc is None and state is None:
            raise ctx.fail(where, "needs description (the pact's message description) or state (a provider state).")
        capture = _get(ctx, where, t, "capture", str, required=True, example='capture = "orders.created"')
        http, publish = _get(ctx, where, t, "http", dict), _get(ctx, where, t, "publish", dict)
        if (http is None) == (publish is None):
            raise ctx.fail(where, 'needs exactly one of http = { service = "order", path = "/orders", body = {...} } '
                                  'or publish = { subject = "...", body = {...} }.')
        if http is not None:
            _check_keys(ctx, f"{where}.http", http, ["service", "method", "path", "body"])
            svc = _get(ctx, f"{where}.http", http, "service", str, required=True, example='service = "order"')
            if svc not in services:
                raise ctx.fail(f"{where}.http.service", f"names service '{svc}', which is not defined; "
                                                        f"{_suggest(svc, sorted(services))}")
        if publish is not None:
            _check_keys(ctx, f"{where}.publish", publish, ["subject", "body"])
            _get(ctx, f"{where}.publish", publish, "subject", str, required=True, example='subject = "orders.created"')
        triggers.append(PactTrigger(desc, state, capture, http, publish, _duration(ctx, where, t, "timeout", 10.0)))
    return PactsSpec(root / d if d else None, tuple(triggers))


def load_callable(system: SystemSpec, ref: str, key: str) -> Callable[..., Any]:
    """Import `module:function` relative to the system file's directory; ConfigError if it cannot be.

    Two systems may both have, say, a ``workload.py``: when a module of that name from another directory is
    imported already, this system's file is loaded under a name of its own.
    """
    import importlib
    import importlib.util
    import sys

    module_name, _, func = ref.partition(":")
    root = str(system.root)
    if root not in sys.path:
        sys.path.insert(0, root)
    own = system.root / (module_name.replace(".", "/") + ".py")
    loaded = sys.modules.get(module_name)
    try:
        if loaded is not None and own.is_file() and Path(getattr(loaded, "__file__", "") or "").resolve() != own.resolve():
            alias = f"_sagaproof_{abs(hash(root)):x}_{module_name}"
            module = sys.modules.get(alias)
            if module is None:
                spec = importlib.util.spec_from_file_location(alias, own)
                assert spec is not None and spec.loader is not None
                module = importlib.util.module_from_spec(spec)
                sys.modules[alias] = module
                spec.loader.exec_module(module)
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"{system.path}: {key}: cannot import module '{module_name}' ({exc}); "
                          f"put {module_name.replace('.', '/')}.py next to the system file.") from exc
    fn = getattr(module, func, None)
    if not callable(fn):
        raise ConfigError(f"{system.path}: {key}: module '{module_name}' has no function '{func}'; "
                          f"define it or fix the name.")
    return cast(Callable[..., Any], fn)
