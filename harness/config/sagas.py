"""The system file's [sagas], [workload], [chaos], [plugins] and [reads] tables: the saga models (steps, roles,
order), how sagas are started, the chaos defaults, the plugins and the status reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sagaproof.harness.config.fields import (
    _PLACEHOLDER_RE,
    _check_keys,
    _Ctx,
    _duration,
    _get,
    _str_list,
    _suggest,
    _typename,
)
from sagaproof.harness.config.spec import (
    STATUS_VIAS,
    ChaosSpec,
    ReadsSpec,
    SagaSpec,
    ServiceSpec,
    StatusReadSpec,
    StepSpec,
    WorkloadSpec,
)

from sagaproof.faultkinds import fault_kind_names

_STEP_KEYS = ["name", "service", "success", "failure", "compensation", "after", "optional", "retriable", "one_of",
              "timeout"]
# Two roles one subject may play in a saga, because the checker can still tell what each event means: the
# compensation or failure that also ends the saga (the service that undoes or fails announces the end), and
# the last step's success that is also the saga's success.
_DOUBLE_ROLES = {frozenset({"compensation", "abort"}), frozenset({"failure", "abort"}),
                 frozenset({"success", "outcome success"})}


def _step_timeout(ctx: _Ctx, where: str, raw: dict[str, Any]) -> float | None:
    if "timeout" not in raw:
        return None
    seconds = _duration(ctx, where, raw, "timeout", 0.0)
    if seconds <= 0:
        raise ctx.fail(f"{where}.timeout", f"must be a duration above zero such as 2s (how long the system waits "
                                           f"for the step's outcome before its time-out path), not {raw['timeout']!r}.")
    return seconds


def _load_saga(ctx: _Ctx, name: str, raw: Any, services: dict[str, ServiceSpec]) -> SagaSpec:
    where = f"sagas.{name}"
    if not isinstance(raw, dict):
        raise ctx.fail(where, "must be a table with key, start, success, abort and steps.")
    _check_keys(ctx, where, raw, ["key", "start", "success", "abort", "steps", "deadline", "event_id",
                                  "compensation_order", "latency_objective", "status"])
    key = _get(ctx, where, raw, "key", str, required=True, example='key = "order_id"')
    if not key or key.startswith(".") or key.endswith(".") or ".." in key:
        raise ctx.fail(f"{where}.key", f"must be a field name or a dotted path such as \"data.order_id\", not {key!r}.")
    start = _get(ctx, where, raw, "start", str, required=True, example='start = "orders.created"')
    success = _str_list(ctx, where, raw, "success", required=True, example='success = ["orders.completed"]')
    abort = _str_list(ctx, where, raw, "abort", default=())
    event_id = _get(ctx, where, raw, "event_id", str, "event_id")
    order = _get(ctx, where, raw, "compensation_order", str, "any")
    if order not in ("any", "reverse"):
        raise ctx.fail(f"{where}.compensation_order", f"must be \"any\" (compensations in any order) or \"reverse\" "
                                                      f"(a cascade: undo in reverse order of success), not {order!r}.")
    steps: list[StepSpec] = []
    raw_steps = _get(ctx, where, raw, "steps", list, [])
    seen: set[str] = set()
    for i, s in enumerate(raw_steps):
        sw = f"{where}.steps[{i}]"
        if not isinstance(s, dict):
            raise ctx.fail(sw, f"must be a table: [[{where}.steps]] name = ..., service = ..., success = ...")
        _check_keys(ctx, sw, s, _STEP_KEYS)
        sname = _get(ctx, sw, s, "name", str, required=True, example='name = "charge"')
        if sname in seen:
            raise ctx.fail(f"{sw}.name", f"step '{sname}' appears twice; give each step its own name.")
        seen.add(sname)
        service = _get(ctx, sw, s, "service", str, required=True, example='service = "payment"')
        if service not in services:
            raise ctx.fail(f"{sw}.service", f"names service '{service}', which is not defined; "
                                            f"{_suggest(service, sorted(services)) if services else 'add a [services.' + service + '] table.'}")
        steps.append(StepSpec(
            sname, service, _get(ctx, sw, s, "success", str, required=True, example='success = "payments.completed"'),
            _get(ctx, sw, s, "failure", str), _get(ctx, sw, s, "compensation", str),
            after=_str_list(ctx, sw, s, "after"), optional=_get(ctx, sw, s, "optional", bool, False),
            retriable=_get(ctx, sw, s, "retriable", bool, False), one_of=_get(ctx, sw, s, "one_of", str),
            timeout=_step_timeout(ctx, sw, s)))
    objective = _duration(ctx, where, raw, "latency_objective", -1.0)
    spec = SagaSpec(name, key, start, success, abort, tuple(steps), _duration(ctx, where, raw, "deadline", 30.0),
                    event_id, order, objective if objective >= 0 else None)
    _check_roles(ctx, spec)
    _check_after(ctx, spec)
    if "status" in raw:
        from dataclasses import replace

        spec = replace(spec, status=_load_status(ctx, f"{where}.status", raw["status"], services))
    return spec


def saga_roles(spec: SagaSpec) -> dict[str, list[tuple[str, str | None]]]:
    """Subject -> the roles it plays in the saga, each (role, step name or None): role is "start",
    "outcome success", "abort", or a step's "success", "failure" or "compensation"."""
    roles: dict[str, list[tuple[str, str | None]]] = {}

    def add(subject: str | None, role: str, step: str | None = None) -> None:
        if subject:
            entry = (role, step)
            if entry not in roles.setdefault(subject, []):
                roles[subject].append(entry)

    add(spec.start, "start")
    for s in spec.success:
        add(s, "outcome success")
    for s in spec.abort:
        add(s, "abort")
    for st in spec.steps:
        add(st.success, "success", st.name)
        add(st.failure, "failure", st.name)
        add(st.compensation, "compensation", st.name)
    return roles


def _role_text(role: str, step: str | None) -> str:
    if step is None:
        return {"start": "the saga's start", "outcome success": "a success outcome", "abort": "an abort outcome"}[role]
    return f"step '{step}' {role}"


def _check_roles(ctx: _Ctx, spec: SagaSpec) -> None:
    """A subject may play one role, or one of the double roles the checker can tell apart."""
    where = f"sagas.{spec.name}"
    for subject, roles in saga_roles(spec).items():
        if len(roles) < 2:
            continue
        steps = {st for _, st in roles if st is not None}
        kinds = frozenset(r for r, _ in roles)
        if len(roles) == 2 and len(steps) <= 1 and kinds in _DOUBLE_ROLES:
            continue
        a, b = roles[0], roles[1]
        raise ctx.fail(where, f"subject '{subject}' is both {_role_text(*a)} and {_role_text(*b)}, and the checker "
                              f"cannot tell which an event on it means; give each its own subject (a subject may "
                              f"only double as a compensation or failure that ends the saga, listed in abort, or "
                              f"as the last step's success that is also in success).")


def _check_after(ctx: _Ctx, spec: SagaSpec) -> None:
    where = f"sagas.{spec.name}"
    names = {st.name for st in spec.steps}
    groups: dict[str, list[str]] = {}
    for st in spec.steps:
        if st.one_of is not None:
            if st.one_of in names:
                raise ctx.fail(f"{where}.steps.{st.name}.one_of", f"'{st.one_of}' is also a step's name; give the "
                                                                  f"group of alternatives a name of its own.")
            groups.setdefault(st.one_of, []).append(st.name)
    subjects = {spec.start, *spec.success, *spec.abort}
    known = sorted(names | set(groups) | subjects)
    for st in spec.steps:
        for dep in st.after:
            if dep == st.name:
                raise ctx.fail(f"{where}.steps.{st.name}.after", "a step cannot come after itself; remove it.")
            if dep not in names and dep not in groups and dep not in subjects:
                raise ctx.fail(f"{where}.steps.{st.name}.after",
                               f"'{dep}' is not a step, a one_of group or a subject of this saga; "
                               f"{_suggest(dep, known)}")
    # No cycles: depth-first over step -> steps (and groups) it comes after.
    deps: dict[str, set[str]] = {}
    for st in spec.steps:
        out: set[str] = set()
        for dep in st.after:
            out.update(groups.get(dep, [dep] if dep in names else []))
        deps[st.name] = out
    state: dict[str, int] = {}

    def visit(n: str, path: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join([*path[path.index(n):], n])
            raise ctx.fail(f"{where}.steps.{n}.after", f"the steps wait for each other in a cycle ({cycle}); "
                                                        f"remove one of these 'after' entries.")
        state[n] = 1
        for d in sorted(deps.get(n, ())):
            visit(d, [*path, n])
        state[n] = 2

    for st in spec.steps:
        visit(st.name, [])


def _workload_headers(ctx: _Ctx, raw: dict[str, Any]) -> dict[str, str]:
    """``[workload] headers``: valid header names, string values, only {request_id} and {index} expanded."""
    headers: dict[str, str] = {}
    for k, v in raw.items():
        if not isinstance(v, str):
            raise ctx.fail(f"workload.headers.{k}", f"must be a string, not {_typename(v)} ({v!r}).")
        if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k):
            raise ctx.fail(f"workload.headers.{k}", "is not a valid header name (letters, digits and -); fix it.")
        for m in _PLACEHOLDER_RE.finditer(v.replace("{{", "").replace("}}", "")):
            if m.group(1) not in ("request_id", "index"):
                raise ctx.fail(f"workload.headers.{k}", f"unknown placeholder '{{{m.group(1)}}}'; the placeholders of "
                                                        f"workload headers are {{request_id}} and {{index}}.")
        headers[k] = v
    return headers


def _workload_saga(ctx: _Ctx, raw: dict[str, Any], saga_specs: dict[str, SagaSpec], via: str,
                   subject: str | None) -> str | None:
    """``[workload] saga``: the saga a start request begins (needed when there are several, unless the
    published subject starts exactly one)."""
    saga: str | None = _get(ctx, "workload", raw, "saga", str)
    if saga is not None and saga not in saga_specs:
        raise ctx.fail("workload.saga", f"names saga '{saga}', which is not defined; "
                                        f"{_suggest(saga, sorted(saga_specs)) if saga_specs else 'add a [sagas.' + saga + '] table.'}")
    if saga is None and len(saga_specs) > 1 and raw:
        if via == "publish":
            saga = next((n for n, sg in saga_specs.items() if sg.start == subject), None)
        if saga is None:
            raise ctx.fail("workload.saga", f"is missing; the system has {len(saga_specs)} sagas, so name the one a "
                                            f"start request begins, e.g. saga = \"{next(iter(saga_specs))}\".")
    return saga


def _load_workload(ctx: _Ctx, raw: dict[str, Any], services: dict[str, ServiceSpec],
                   saga_specs: dict[str, SagaSpec]) -> WorkloadSpec:
    w = "workload"
    _check_keys(ctx, w, raw, ["sagas", "rate", "concurrency", "via", "service", "method", "path", "subject", "body",
                              "saga", "key", "max_open", "headers", "idempotency_key", "duplicate"])
    sagas = _get(ctx, w, raw, "sagas", int, 20)
    if sagas < 0:
        raise ctx.fail("workload.sagas", f"must be 0 or more, not {sagas}.")
    rate = float(_get(ctx, w, raw, "rate", float, 20.0))
    if rate <= 0:
        raise ctx.fail("workload.rate", f"must be a positive number of saga starts per second, not {rate}.")
    concurrency = _get(ctx, w, raw, "concurrency", int, 8)
    if concurrency < 1:
        raise ctx.fail("workload.concurrency", f"must be at least 1, not {concurrency}.")
    via = _get(ctx, w, raw, "via", str, "http")
    if via not in ("http", "publish"):
        raise ctx.fail("workload.via", f"must be \"http\" or \"publish\", not {via!r}.")
    service = _get(ctx, w, raw, "service", str)
    subject = _get(ctx, w, raw, "subject", str)
    if raw and via == "http":
        if service is None:
            raise ctx.fail("workload.service", 'is missing; with via = "http" name the service to call, e.g. service = "order".')
        if service not in services:
            raise ctx.fail("workload.service", f"names service '{service}', which is not defined; "
                                               f"{_suggest(service, sorted(services))}")
    if raw and via == "publish" and not subject:
        raise ctx.fail("workload.subject", 'is missing; with via = "publish" give the subject to publish on.')
    body = _get(ctx, w, raw, "body", str)
    if body is not None and not re.match(r"^[\w.]+:[\w]+$", body):
        raise ctx.fail("workload.body", f"must name a Python callable as module:function, such as "
                                        f"\"workload:order_body\", not {body!r}.")
    method = _get(ctx, w, raw, "method", str, "POST").upper()
    if method not in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        raise ctx.fail("workload.method", f"must be an HTTP method such as POST, not {method!r}.")
    path = _get(ctx, w, raw, "path", str, "/")
    if not path.startswith("/"):
        raise ctx.fail("workload.path", f"must start with '/', not {path!r}.")
    saga = _workload_saga(ctx, raw, saga_specs, via, subject)
    key = _get(ctx, w, raw, "key", str)
    max_open = _get(ctx, w, raw, "max_open", int)
    if max_open is not None and max_open < 1:
        raise ctx.fail("workload.max_open", f"must be at least 1 saga open at once, not {max_open}.")
    headers = _workload_headers(ctx, _get(ctx, w, raw, "headers", dict, {}))
    idem = _get(ctx, w, raw, "idempotency_key", str)
    if idem is not None and not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", idem):
        raise ctx.fail("workload.idempotency_key", f"must be the name of the header that carries the key, such as "
                                                   f"\"Idempotency-Key\", not {idem!r}.")
    duplicate = float(_get(ctx, w, raw, "duplicate", float, 0.0))
    if not 0.0 <= duplicate <= 1.0:
        raise ctx.fail("workload.duplicate", f"must be a fraction between 0 and 1 of the requests to send twice, "
                                             f"not {duplicate}.")
    return WorkloadSpec(sagas, rate, concurrency, via, service, method, path, subject, body, saga, key, max_open,
                        headers, idem, duplicate)


def _load_chaos(ctx: _Ctx, raw: dict[str, Any]) -> ChaosSpec:
    _check_keys(ctx, "chaos", raw, ["faults", "intensity", "toxiproxy_url", "enabled", "schedule_tolerance",
                                    "phases"])
    faults = _str_list(ctx, "chaos", raw, "faults", default=ChaosSpec.faults)
    known = fault_kind_names()
    for f in faults:
        if f not in known:
            raise ctx.fail("chaos.faults", f"unknown fault '{f}'; {_suggest(f, list(known))} "
                                           f"The faults are: {', '.join(known)} (a plugin's kind is known once "
                                           f"[plugins] or --plugin names its module).")
    intensity = float(_get(ctx, "chaos", raw, "intensity", float, 0.5))
    if not 0.0 <= intensity <= 1.0:
        raise ctx.fail("chaos.intensity", f"must be between 0 and 1, not {intensity}.")
    url = _get(ctx, "chaos", raw, "toxiproxy_url", str)
    if url is not None and not re.match(r"^https?://[^\s/]+", url):
        raise ctx.fail("chaos.toxiproxy_url", f"must be an http:// URL such as http://127.0.0.1:8474, not {url!r}.")
    tolerance = float(_get(ctx, "chaos", raw, "schedule_tolerance", float, ChaosSpec.schedule_tolerance))
    if not 0.0 <= tolerance <= 1.0:
        raise ctx.fail("chaos.schedule_tolerance", f"must be a fraction between 0 and 1, not {tolerance}.")
    phases = _str_list(ctx, "chaos", raw, "phases", default=ChaosSpec.phases)
    for p in phases:
        if p not in ("targeted", "random"):
            raise ctx.fail("chaos.phases", f"unknown phase '{p}'; the phases are \"targeted\" (faults aimed at each "
                           f"consumer's redelivery, crash and reconnect windows) and \"random\" (the seeded schedule).")
    return ChaosSpec(faults, intensity, url, _get(ctx, "chaos", raw, "enabled", bool, True), tolerance,
                     tuple(dict.fromkeys(phases)))


def _load_plugins(ctx: _Ctx, root: Path, raw: dict[str, Any]) -> tuple[str, ...]:
    """``[plugins] modules``: imported now (they register checks and fault kinds the rest of the file may
    name), with the installed plugins (:mod:`harness.plugins`)."""
    from sagaproof.harness.plugins import load_plugins

    _check_keys(ctx, "plugins", raw, ["modules"])
    modules = _str_list(ctx, "plugins", raw, "modules")
    load_plugins(modules, base=root, where=f"{ctx.display} [plugins] modules")
    return tuple(modules)


def _check_callable_ref(ctx: _Ctx, key: str, target: Any) -> str:
    if not isinstance(target, str) or not re.match(r"^[\w.]+:[\w]+$", target):
        raise ctx.fail(key, f"must name a Python callable as module:function, such as "
                            f"\"invariants:money_conserved\", not {target!r}.")
    return target




def _load_status(ctx: _Ctx, where: str, raw: Any, services: dict[str, ServiceSpec]) -> StatusReadSpec:
    example = ('[sagas.NAME.status] http = { service = "order", path = "/orders/{key}" }, field = "status", '
               'pending = ["PENDING"], success = ["COMPLETED"], abort = ["CANCELLED"]')
    if not isinstance(raw, dict):
        raise ctx.fail(where, f"must be a table such as {example}.")
    _check_keys(ctx, where, raw, [*STATUS_VIAS, "field", "pending", "success", "abort", "timeout"])
    vias = [v for v in STATUS_VIAS if v in raw]
    if len(vias) != 1:
        raise ctx.fail(where, 'needs exactly one of http = { service = "order", path = "/orders/{key}" }, '
                              'nats = { subject = "orders.status.{key}" } or kv = { bucket = "ORDERS", key = "{key}" }.')
    via = vias[0]
    target = raw[via]
    if not isinstance(target, dict):
        raise ctx.fail(f"{where}.{via}", f"must be a table, not {_typename(target)} ({target!r}).")
    tw = f"{where}.{via}"
    service = path = subject = bucket = key = None
    if via == "http":
        _check_keys(ctx, tw, target, ["service", "path"])
        service = _get(ctx, tw, target, "service", str, required=True, example='service = "order"')
        if service not in services:
            raise ctx.fail(f"{tw}.service", f"names service '{service}', which is not defined; "
                                            f"{_suggest(service, sorted(services))}")
        path = _get(ctx, tw, target, "path", str, required=True, example='path = "/orders/{key}"')
        if not path.startswith("/") or "{key}" not in path:
            raise ctx.fail(f"{tw}.path", f"must be a path starting with '/' with {{key}} where the saga's key goes "
                                         f"(in the path or the query), such as \"/orders/{{key}}\", not {path!r}.")
    elif via == "nats":
        _check_keys(ctx, tw, target, ["subject"])
        subject = _get(ctx, tw, target, "subject", str, required=True, example='subject = "orders.status.{key}"')
        if "{key}" not in subject or " " in subject:
            raise ctx.fail(f"{tw}.subject", f"must be a subject with {{key}} where the saga's key goes, such as "
                                            f"\"orders.status.{{key}}\", not {subject!r}.")
    else:
        _check_keys(ctx, tw, target, ["bucket", "key"])
        bucket = _get(ctx, tw, target, "bucket", str, required=True, example='bucket = "ORDERS"')
        if not re.match(r"^[A-Za-z0-9_-]+$", bucket):
            raise ctx.fail(f"{tw}.bucket", f"must be a key-value bucket name (letters, digits, '-' and '_'), "
                                           f"not {bucket!r}.")
        key = _get(ctx, tw, target, "key", str, required=True, example='key = "{key}"')
        if "{key}" not in key:
            raise ctx.fail(f"{tw}.key", f"must hold {{key}} where the saga's key goes, such as \"orders.{{key}}\", "
                                        f"not {key!r}.")
    fld = _get(ctx, where, raw, "field", str, required=True, example='field = "status"')
    if not fld or fld.startswith(".") or fld.endswith(".") or ".." in fld:
        raise ctx.fail(f"{where}.field", f"must be a field name or a dotted path such as \"order.status\", not {fld!r}.")
    sets: dict[str, tuple[str, ...]] = {}
    for name in ("pending", "success", "abort"):
        values = _str_list(ctx, where, raw, name, required=name != "abort",
                           example=f'{name} = ["{ {"pending": "PENDING", "success": "COMPLETED"}.get(name, "CANCELLED")}"]')
        if name in raw and not values:
            raise ctx.fail(f"{where}.{name}", f"is empty; list the status values that mean {name}, or remove it.")
        sets[name] = values
    seen: dict[str, str] = {}
    for name, values in sets.items():
        for v in values:
            if v in seen:
                raise ctx.fail(f"{where}.{name}", f"value {v!r} is also in {seen[v]}; a status value means one thing, "
                                                  f"so list it in one of pending, success and abort.")
            seen[v] = name
    return StatusReadSpec(via, fld, sets["pending"], sets["success"], sets["abort"], service, path, subject, bucket,
                          key, _duration(ctx, where, raw, "timeout", 2.0))


def _load_reads(ctx: _Ctx, raw: dict[str, Any], sagas: dict[str, SagaSpec]) -> ReadsSpec:
    _check_keys(ctx, "reads", raw, ["sample", "rate", "concurrency", "enabled"])
    if raw and not any(s.status for s in sagas.values()):
        raise ctx.fail("reads", "is set but no saga declares a status read; add [sagas.NAME.status] (see "
                                "docs/system-file.md) or remove [reads].")
    sample = float(_get(ctx, "reads", raw, "sample", float, ReadsSpec.sample))
    if not 0.0 <= sample <= 1.0:
        raise ctx.fail("reads.sample", f"must be a fraction between 0 and 1, not {sample}.")
    rate = float(_get(ctx, "reads", raw, "rate", float, ReadsSpec.rate))
    if rate <= 0:
        raise ctx.fail("reads.rate", f"must be a positive number of reads per second, not {rate}.")
    concurrency = _get(ctx, "reads", raw, "concurrency", int, ReadsSpec.concurrency)
    if concurrency < 1:
        raise ctx.fail("reads.concurrency", f"must be at least 1, not {concurrency}.")
    return ReadsSpec(sample, rate, concurrency, _get(ctx, "reads", raw, "enabled", bool, True))
