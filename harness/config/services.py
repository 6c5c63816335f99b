"""The system file's [nats] and [services] tables: NATS, its streams and consumers, the services the harness
starts (command, env, readiness, replicas) and those of a deployed system (attach mode)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any, cast

from sagaproof.harness.config.fields import (
    _PLACEHOLDER_RE,
    _check_keys,
    _check_placeholders,
    _Ctx,
    _duration,
    _get,
    _str_list,
    _typename,
)
from sagaproof.harness.config.spec import (
    DISCARDS,
    RETENTIONS,
    ConsumerSpec,
    NatsSpec,
    ReadySpec,
    ServiceSpec,
    StreamSpec,
)


def _load_nats(ctx: _Ctx, raw: dict[str, Any]) -> NatsSpec:
    _check_keys(ctx, "nats", raw, ["url", "user", "password", "cluster", "streams", *NATS_ACCESS_KEYS])
    url = _get(ctx, "nats", raw, "url", str)
    if url is not None and not re.match(r"^(nats|tls)://[^\s]+$", url):
        raise ctx.fail("nats.url", f"must look like nats://127.0.0.1:4222, not {url!r}.")
    cluster = _get(ctx, "nats", raw, "cluster", int, 1)
    if cluster not in (1, 3):
        raise ctx.fail("nats.cluster", f"must be 1 (a single server) or 3 (a 3-node cluster), not {cluster}.")
    if url is not None and "cluster" in raw:
        raise ctx.fail("nats.cluster", "cannot be combined with nats.url; the harness starts a cluster only when it "
                                       "embeds NATS. Remove one of them.")
    streams = []
    raw_streams = _get(ctx, "nats", raw, "streams", list, [])
    for i, s in enumerate(raw_streams):
        streams.append(_load_stream(ctx, f"nats.streams[{i}]", s))
    names = [st.name for st in streams]
    for st in streams:
        if names.count(st.name) > 1:
            raise ctx.fail("nats.streams", f"stream '{st.name}' is declared twice; give each stream its own name.")
        for other in (st.mirror, *st.sources):
            if other is not None and other == st.name:
                raise ctx.fail(f"nats.streams.{st.name}", "cannot mirror or source itself; name another stream.")
    return NatsSpec(url=url, user=_get(ctx, "nats", raw, "user", str), password=_get(ctx, "nats", raw, "password", str),
                    cluster=cluster, streams=tuple(streams))


_STREAM_KEYS = ["name", "subjects", "replicas", "duplicate_window", "storage", "retention", "max_age", "max_msgs",
                "max_bytes", "max_msgs_per_subject", "discard", "consumers", "mirror", "sources"]
_CONSUMER_KEYS = ["name", "filter_subject", "filter_subjects", "ack_wait", "max_deliver", "ack_policy",
                  "deliver_subject", "deliver_group"]


def _positive_int(ctx: _Ctx, where: str, table: dict[str, Any], key: str) -> int | None:
    value = _get(ctx, where, table, key, int)
    if value is not None and value < 1:
        raise ctx.fail(f"{where}.{key}", f"must be a positive integer, not {value}; leave it out for no limit.")
    return cast("int | None", value)


def _choice(ctx: _Ctx, where: str, table: dict[str, Any], key: str, choices: tuple[str, ...], default: str) -> str:
    value = _get(ctx, where, table, key, str, default)
    if value not in choices:
        raise ctx.fail(f"{where}.{key}", f"must be one of {', '.join(repr(c) for c in choices)}, not {value!r}.")
    return cast(str, value)


def _load_stream(ctx: _Ctx, where: str, s: Any) -> StreamSpec:
    """One [[nats.streams]] table: every setting a team gives when it creates a stream, checked here."""
    if not isinstance(s, dict):
        raise ctx.fail(where, "must be a table, e.g. [[nats.streams]] name = \"SHOP\" subjects = [\"orders.>\"].")
    _check_keys(ctx, where, s, _STREAM_KEYS)
    name = _get(ctx, where, s, "name", str, required=True, example='name = "SHOP"')
    if not re.match(r"^[A-Za-z0-9_-]+$", name):
        raise ctx.fail(f"{where}.name", f"stream names may use letters, digits, '-' and '_' only, not {name!r}.")
    mirror = _get(ctx, where, s, "mirror", str)
    sources = _str_list(ctx, where, s, "sources")
    if mirror is not None:
        if "subjects" in s:
            raise ctx.fail(f"{where}.subjects", "a mirror takes its subjects from the stream it mirrors; remove "
                                                "subjects (or mirror).")
        if sources:
            raise ctx.fail(f"{where}.sources", "cannot be combined with mirror; keep one of them.")
        subjects: tuple[str, ...] = ()
    elif sources:
        subjects = _str_list(ctx, where, s, "subjects")
    else:
        subjects = _str_list(ctx, where, s, "subjects", required=True, example='subjects = ["orders.>"]')
    storage = _choice(ctx, where, s, "storage", ("file", "memory"), "file")
    retention = _choice(ctx, where, s, "retention", RETENTIONS, "limits")
    discard = _choice(ctx, where, s, "discard", DISCARDS, "old")
    dw = _duration(ctx, where, s, "duplicate_window", 0.0) or None
    max_age = _duration(ctx, where, s, "max_age", 0.0) or None
    consumers: list[ConsumerSpec] = []
    for j, c in enumerate(_get(ctx, where, s, "consumers", list, [])):
        cw = f"{where}.consumers[{j}]"
        if not isinstance(c, dict):
            raise ctx.fail(cw, 'must be a table, e.g. [[nats.streams.consumers]] name = "payout" '
                               'filter_subject = "pay.cmd.>" max_deliver = 5 ack_wait = "30s".')
        _check_keys(ctx, cw, c, _CONSUMER_KEYS)
        cname = _get(ctx, cw, c, "name", str, required=True, example='name = "payout"')
        if not re.match(r"^[A-Za-z0-9_-]+$", cname):
            raise ctx.fail(f"{cw}.name", f"consumer names may use letters, digits, '-' and '_' only, not {cname!r}.")
        if cname in {x.name for x in consumers}:
            raise ctx.fail(f"{cw}.name", f"consumer '{cname}' is declared twice on stream '{name}'.")
        if "filter_subject" in c and "filter_subjects" in c:
            raise ctx.fail(f"{cw}.filter_subjects", "cannot be combined with filter_subject; keep one of them.")
        filters = _str_list(ctx, cw, c, "filter_subjects") or _str_list(ctx, cw, c, "filter_subject")
        policy = _choice(ctx, cw, c, "ack_policy", ("explicit", "all", "none"), "explicit")
        if retention == "workqueue" and policy != "explicit":
            raise ctx.fail(f"{cw}.ack_policy", f"must be \"explicit\" on work-queue stream '{name}' (JetStream "
                                               f"refuses any other); remove it.")
        ack_wait = _duration(ctx, cw, c, "ack_wait", 0.0) or None
        consumers.append(ConsumerSpec(cname, filters, ack_wait, _positive_int(ctx, cw, c, "max_deliver"), policy,
                                      _get(ctx, cw, c, "deliver_subject", str), _get(ctx, cw, c, "deliver_group", str)))
    replicas = _get(ctx, where, s, "replicas", int)
    if replicas is not None and replicas not in (1, 3, 5) and not 1 <= replicas <= 5:
        raise ctx.fail(f"{where}.replicas", f"must be between 1 and 5, not {replicas}.")
    return StreamSpec(name, subjects, replicas, dw, storage, retention, max_age,
                      _positive_int(ctx, where, s, "max_msgs"), _positive_int(ctx, where, s, "max_bytes"),
                      _positive_int(ctx, where, s, "max_msgs_per_subject"), discard, tuple(consumers), mirror,
                      sources)


def _load_ready(ctx: _Ctx, where: str, raw: Any) -> ReadySpec:
    if raw is None:
        return ReadySpec("none")
    if not isinstance(raw, dict):
        raise ctx.fail(where, 'must be a table such as { http = "/health" }, { tcp = true } or { log = "ready" }.')
    _check_keys(ctx, where, raw, ["http", "tcp", "log", "timeout"])
    timeout = _duration(ctx, where, raw, "timeout", 15.0)
    kinds = [k for k in ("http", "tcp", "log") if k in raw]
    if len(kinds) != 1:
        raise ctx.fail(where, 'needs exactly one of http, tcp or log, e.g. { http = "/health" }.')
    kind = kinds[0]
    if kind == "tcp":
        if _get(ctx, where, raw, "tcp", bool) is not True:
            raise ctx.fail(f"{where}.tcp", "must be true to probe a TCP connect to the service's {port}.")
        return ReadySpec("tcp", "", timeout)
    target = _get(ctx, where, raw, kind, str)
    if kind == "http" and not target.startswith("/"):
        raise ctx.fail(f"{where}.http", f"must be a path starting with '/', such as \"/health\", not {target!r}.")
    if kind == "log":
        try:
            re.compile(target)
        except re.error as exc:
            raise ctx.fail(f"{where}.log", f"is not a valid regular expression ({exc}); fix the pattern.") from exc
    return ReadySpec(kind, target, timeout)


def _load_env(ctx: _Ctx, where: str, raw: dict[str, Any]) -> dict[str, str]:
    env: dict[str, str] = {}
    for k, v in raw.items():
        if isinstance(v, bool) or not isinstance(v, str | int | float):
            raise ctx.fail(f"{where}.{k}", f"must be a string, not {_typename(v)} ({v!r}).")
        _check_placeholders(ctx, f"{where}.{k}", str(v))
        env[k] = str(v)
    return env


def _load_service(ctx: _Ctx, root: Path, name: str, raw: Any, shared_env: dict[str, str]) -> ServiceSpec:
    where = f"services.{name}"
    if not re.match(r"^[A-Za-z0-9_-]+$", name):
        raise ctx.fail(where, "service names may use letters, digits, '-' and '_' only; rename it.")
    if not isinstance(raw, dict):
        raise ctx.fail(where, f"must be a table, e.g. [{where}] command = [\"python\", \"svc.py\"].")
    _check_keys(ctx, where, raw, ["command", "cwd", "env", "inherit_env", "ready", "contracts", "openapi",
                                  "stop_timeout", "replicas"])
    cmd = _get(ctx, where, raw, "command", (list, str), required=True, example='command = ["{python}", "app.py"]')
    if isinstance(cmd, str):
        try:
            command = tuple(shlex.split(cmd))
        except ValueError as exc:
            raise ctx.fail(f"{where}.command", f"cannot be split like a shell line ({exc}); use a list instead.") from exc
    else:
        for i, part in enumerate(cmd):
            if not isinstance(part, str):
                raise ctx.fail(f"{where}.command[{i}]", f"must be a string, not {_typename(part)} ({part!r}).")
        command = tuple(cmd)
    if not command:
        raise ctx.fail(f"{where}.command", 'is empty; give the program to run, e.g. ["{python}", "app.py"].')
    for part in command:
        _check_placeholders(ctx, f"{where}.command", part)
    cwd = root / _get(ctx, where, raw, "cwd", str, ".")
    if not cwd.is_dir():
        raise ctx.fail(f"{where}.cwd", f"directory {cwd} does not exist; give a path relative to {root}.")
    env = {**shared_env, **_load_env(ctx, f"{where}.env", _get(ctx, where, raw, "env", dict, {}))}
    contracts = []
    for c in _str_list(ctx, where, raw, "contracts"):
        p = root / c
        if not p.is_file():
            raise ctx.fail(f"{where}.contracts", f"file {p} does not exist; give a path relative to {root}.")
        contracts.append(p)
    openapi = _get(ctx, where, raw, "openapi", str)
    if openapi is not None and not openapi.startswith("/"):
        raise ctx.fail(f"{where}.openapi", f"must be the HTTP path the service serves its OpenAPI document on, "
                                           f"such as \"/openapi.json\", not {openapi!r}.")
    replicas, replica_settings = _load_replicas(ctx, where, raw)
    return ServiceSpec(
        name=name, command=command, cwd=cwd, env=env, replicas=replicas, replica_settings=replica_settings,
        inherit_env=_get(ctx, where, raw, "inherit_env", bool, True),
        ready=_load_ready(ctx, f"{where}.ready", raw.get("ready")),
        contracts=tuple(contracts), openapi=openapi,
        stop_timeout=_duration(ctx, where, raw, "stop_timeout", 5.0),
    )


def _load_replicas(ctx: _Ctx, where: str, raw: dict[str, Any]) -> tuple[int, tuple[dict[str, Any], ...]]:
    """``replicas = N``, or a list of per-replica tables ``{ env = {...}, command = [...] }``."""
    value = _get(ctx, where, raw, "replicas", (int, list), 1)
    if isinstance(value, int):
        if not 1 <= value <= 64:
            raise ctx.fail(f"{where}.replicas", f"must be between 1 and 64 processes, not {value}.")
        return value, ()
    if not value:
        raise ctx.fail(f"{where}.replicas", "is an empty list; give one table per replica, e.g. "
                                            "replicas = [{ env = { ZONE = \"a\" } }, { env = { ZONE = \"b\" } }].")
    settings = []
    for i, item in enumerate(value):
        rw = f"{where}.replicas[{i}]"
        if not isinstance(item, dict):
            raise ctx.fail(rw, f"must be a table of this replica's settings (env, command), not {_typename(item)} "
                               f"({item!r}).")
        _check_keys(ctx, rw, item, ["env", "command"])
        own: dict[str, Any] = {"env": _load_env(ctx, f"{rw}.env", _get(ctx, rw, item, "env", dict, {}))}
        if "command" in item:
            cmd = _str_list(ctx, rw, item, "command")
            if not cmd:
                raise ctx.fail(f"{rw}.command", "is empty; give the program to run, or leave it out.")
            for part in cmd:
                _check_placeholders(ctx, f"{rw}.command", part)
            own["command"] = cmd
        settings.append(own)
    return len(settings), tuple(settings)




NATS_ACCESS_KEYS = ("creds", "nkey", "tls")
COMMAND_KINDS = ("kill", "restart", "pause", "resume")
COMMAND_PLACEHOLDERS = ("name", "url", "host", "port", "proxy", "python", "system_dir")
_SERVICE_URL_RE = re.compile(r"^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]+)(:\d{1,5})?(/[^\s]*)?$")


def _is_attached(raw: Any) -> bool:
    return isinstance(raw, dict) and "url" in raw


def _existing_file(ctx: _Ctx, root: Path, key: str, value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ctx.fail(key, f"must be the path of {what} (a string), not {value!r}.")
    p = root / value
    if not p.is_file():
        raise ctx.fail(key, f"file {p} does not exist; give the path of {what}, absolute or relative to {root}.")
    return p


def _load_nats_access(ctx: _Ctx, root: Path, raw: dict[str, Any], nats: NatsSpec) -> NatsSpec:
    """[nats] creds, nkey and tls: how the harness itself connects to an existing NATS (nats.url)."""
    from dataclasses import replace

    given = [k for k in NATS_ACCESS_KEYS if k in raw]
    if not given:
        return nats
    if nats.url is None:
        raise ctx.fail(f"nats.{given[0]}", "is for an existing NATS; set nats.url to it (the embedded NATS the "
                                           "harness starts has its own generated credentials).")
    if "creds" in raw and "nkey" in raw:
        raise ctx.fail("nats.nkey", "cannot be combined with nats.creds (a .creds file holds its own nkey seed); "
                                    "keep one of them.")
    creds = _existing_file(ctx, root, "nats.creds", raw["creds"], "a NATS credentials file (.creds)") \
        if "creds" in raw else None
    nkey = _existing_file(ctx, root, "nats.nkey", raw["nkey"], "a file holding an nkey seed (SU...)") \
        if "nkey" in raw else None
    if nkey is not None:
        seed = nkey.read_text(encoding="utf-8", errors="replace").strip()
        if not seed.startswith("SU"):
            raise ctx.fail("nats.nkey", f"file {nkey} does not hold a user nkey seed (a line starting with SU); "
                                        f"give the seed file `nk -gen user` wrote, not the public key.")
    ca = cert = key = None
    if "tls" in raw:
        tls = raw["tls"]
        if not isinstance(tls, dict):
            raise ctx.fail("nats.tls", 'must be a table such as { ca = "ca.pem", cert = "client.pem", '
                                       'key = "client-key.pem" }.')
        _check_keys(ctx, "nats.tls", tls, ["ca", "cert", "key"])
        ca = _existing_file(ctx, root, "nats.tls.ca", tls["ca"], "a CA certificate (PEM)") if "ca" in tls else None
        cert = _existing_file(ctx, root, "nats.tls.cert", tls["cert"], "a client certificate (PEM)") \
            if "cert" in tls else None
        key = _existing_file(ctx, root, "nats.tls.key", tls["key"], "the client certificate's key (PEM)") \
            if "key" in tls else None
        if (cert is None) != (key is None):
            raise ctx.fail("nats.tls", "needs both cert and key for a client certificate (or neither); add the "
                                       "missing one.")
    return replace(nats, creds=creds, nkey=nkey, tls_ca=ca, tls_cert=cert, tls_key=key)


def _command(ctx: _Ctx, key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            argv = tuple(shlex.split(value))
        except ValueError as exc:
            raise ctx.fail(key, f"cannot be split like a shell line ({exc}); use a list instead.") from exc
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        argv = tuple(value)
    else:
        raise ctx.fail(key, f'must be a command as a list of strings, e.g. ["kubectl", "delete", "pod", '
                            f'"-l", "app={{name}}"], not {value!r}.')
    if not argv:
        raise ctx.fail(key, "is empty; give the program to run and its arguments.")
    for part in argv:
        for m in _PLACEHOLDER_RE.finditer(part):
            if m.group(1) not in COMMAND_PLACEHOLDERS:
                raise ctx.fail(key, f"unknown placeholder '{{{m.group(1)}}}'; the placeholders of fault commands "
                                    f"are {', '.join('{' + p + '}' for p in COMMAND_PLACEHOLDERS)}.")
    return argv


def _load_attached_service(ctx: _Ctx, root: Path, name: str, raw: dict[str, Any], nats: NatsSpec) -> ServiceSpec:
    """A service the harness does not start: its base URL, readiness probe, Toxiproxy proxy and fault commands."""
    where = f"services.{name}"
    if not re.match(r"^[A-Za-z0-9_-]+$", name):
        raise ctx.fail(where, "service names may use letters, digits, '-' and '_' only; rename it.")
    if "command" in raw:
        raise ctx.fail(where, "has both url and command; give command for a service the harness starts, or url "
                              "for one that already runs (attach mode), not both.")
    _check_keys(ctx, where, raw, ["url", "ready", "contracts", "openapi", "proxy", "commands"])
    url = _get(ctx, where, raw, "url", str)
    if not _SERVICE_URL_RE.match(url or ""):
        raise ctx.fail(f"{where}.url", f"must be the service's HTTP base URL such as http://payment:8080, "
                                       f"not {url!r}.")
    if nats.url is None:
        raise ctx.fail(f"{where}.url", "an attached service talks to the NATS it already uses; set nats.url to "
                                       "it (the harness starts NATS only for services it starts).")
    ready = _load_ready(ctx, f"{where}.ready", raw.get("ready"))
    if ready.kind == "log":
        raise ctx.fail(f"{where}.ready.log", "needs the service's output, which an attached service does not give "
                                             "the harness; probe it with { http = \"/health\" } or { tcp = true }.")
    proxy = _get(ctx, where, raw, "proxy", str)
    commands_raw = _get(ctx, where, raw, "commands", dict, {})
    _check_keys(ctx, f"{where}.commands", commands_raw, [*COMMAND_KINDS, "timeout"])
    commands = {k: _command(ctx, f"{where}.commands.{k}", v) for k, v in commands_raw.items() if k != "timeout"}
    timeout = _duration(ctx, f"{where}.commands", commands_raw, "timeout", 60.0)
    contracts = []
    for c in _str_list(ctx, where, raw, "contracts"):
        p = root / c
        if not p.is_file():
            raise ctx.fail(f"{where}.contracts", f"file {p} does not exist; give a path relative to {root}.")
        contracts.append(p)
    openapi = _get(ctx, where, raw, "openapi", str)
    if openapi is not None and not openapi.startswith("/"):
        raise ctx.fail(f"{where}.openapi", f"must be the HTTP path the service serves its OpenAPI document on, "
                                           f"such as \"/openapi.json\", not {openapi!r}.")
    return ServiceSpec(name=name, command=(), cwd=root, ready=ready, contracts=tuple(contracts), openapi=openapi,
                       url=url.rstrip("/"), proxy=proxy, commands=commands, command_timeout=timeout)
