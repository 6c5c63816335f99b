"""Load and validate the system file (`sagaproof.toml` or `[tool.sagaproof]` in `pyproject.toml`).

The file describes the system under test: NATS, the services, the sagas, the workload, the invariants
and the chaos defaults. It is written by hand, so every mistake is reported as one sentence that names
the file, the key and the fix (:class:`~harness.errors.ConfigError`, exit code 2). The result is a tree
of frozen dataclasses; nothing else in the harness reads TOML.
"""

from __future__ import annotations

import difflib
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from sagaproof.harness.errors import ConfigError

from sagaproof.faultkinds import fault_kind_names

SYSTEM_FILE = "sagaproof.toml"
PLACEHOLDERS = ("port", "nats_url", "data_dir", "shared_dir", "python", "name", "service", "replica", "system_dir")
_PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")


RETENTIONS = ("limits", "workqueue", "interest")
DISCARDS = ("old", "new")


@dataclass(frozen=True)
class ConsumerSpec:
    """A durable consumer the harness creates on a declared stream before the services start (the services then
    bind to it by name)."""

    name: str
    filter_subjects: tuple[str, ...] = ()
    ack_wait: float | None = None  # None: the server's default (30 s)
    max_deliver: int | None = None  # None: unlimited
    ack_policy: str = "explicit"  # "explicit" | "all" | "none"
    deliver_subject: str | None = None  # a push consumer; None: a pull consumer
    deliver_group: str | None = None


@dataclass(frozen=True)
class StreamSpec:
    """A JetStream stream the harness creates before the services start, with the settings teams use.

    ``retention`` is ``"limits"`` (the default: kept until a limit is reached), ``"workqueue"`` (removed once a
    consumer acknowledges it) or ``"interest"`` (removed once every consumer has). ``mirror`` and ``sources`` name
    other streams this one copies from; the harness creates them as written and reads them as facts.
    """

    name: str
    subjects: tuple[str, ...]
    replicas: int | None = None
    duplicate_window: float | None = None
    storage: str = "file"
    retention: str = "limits"
    max_age: float | None = None
    max_msgs: int | None = None
    max_bytes: int | None = None
    max_msgs_per_subject: int | None = None
    discard: str = "old"
    consumers: tuple[ConsumerSpec, ...] = ()
    mirror: str | None = None
    sources: tuple[str, ...] = ()

    @property
    def consumed_on_read(self) -> bool:
        """Whether reading the stream with a consumer of one's own would take messages from the services: a
        work queue (one consumer per subject, a message removed when acknowledged). The recorder reads such a
        stream's messages as they are published, never through a consumer."""
        return self.retention == "workqueue"


@dataclass(frozen=True)
class NatsSpec:
    """How the run gets its NATS: an embedded server or cluster, or an existing URL."""

    url: str | None = None
    user: str | None = None
    password: str | None = None
    cluster: int = 1
    streams: tuple[StreamSpec, ...] = ()
    # attach mode (an existing NATS at url): credentials and TLS, see _load_nats_access
    creds: Path | None = None
    nkey: Path | None = None
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None

    @property
    def embedded(self) -> bool:
        return self.url is None


@dataclass(frozen=True)
class ReadySpec:
    """A readiness probe: HTTP GET path answering 2xx, a TCP connect to {port}, or a log regex."""

    kind: str  # "http" | "tcp" | "log" | "none"
    target: str = ""
    timeout: float = 15.0


@dataclass(frozen=True)
class ServiceSpec:
    """One service of the system under test, run as its own OS process."""

    name: str
    command: tuple[str, ...]
    cwd: Path
    env: dict[str, str] = field(default_factory=dict)
    inherit_env: bool = True
    ready: ReadySpec = ReadySpec("none")
    contracts: tuple[Path, ...] = ()
    openapi: str | None = None
    stop_timeout: float = 5.0
    # attach mode (a service given by its base URL instead of a command), see _load_attached_service
    url: str | None = None
    proxy: str | None = None
    commands: dict[str, tuple[str, ...]] = field(default_factory=dict)
    command_timeout: float = 60.0
    # replicas: how many processes run this service, and per-replica settings (env on top of env, a command)
    replicas: int = 1
    replica_settings: tuple[dict[str, Any], ...] = ()
    # set on the spec of one replica's process (see SystemSpec.processes): the service it is a replica of
    group: str | None = None
    replica: int | None = None

    @property
    def service(self) -> str:
        """The name of the service as the system file declares it (for a replica, the service it belongs to)."""
        return self.group or self.name

    def replica_names(self) -> list[str]:
        """The names of this service's processes: its own name, or ``NAME-1`` .. ``NAME-N`` for replicas."""
        if self.replicas <= 1 or self.group is not None:
            return [self.name]
        return [f"{self.name}-{i}" for i in range(1, self.replicas + 1)]

    def replica_spec(self, index: int) -> ServiceSpec:
        """The spec of replica ``index`` (1-based): its own name, its settings over the service's."""
        from dataclasses import replace

        own = self.replica_settings[index - 1] if index <= len(self.replica_settings) else {}
        return replace(self, name=f"{self.name}-{index}", group=self.name, replica=index,
                       env={**self.env, **own.get("env", {})}, command=own.get("command") or self.command)

    @property
    def attached(self) -> bool:
        """True if the service runs elsewhere (given by `url`) and the harness only talks to it."""
        return self.url is not None


@dataclass(frozen=True)
class StepSpec:
    """A saga step: its success event, and optionally its failure and compensation events.

    ``after`` names what the step waits for (other steps, ``one_of`` groups, or the saga's own start and
    outcome subjects); steps without it are unordered. A step without ``compensation`` has nothing to undo.
    ``optional`` steps may be skipped; ``retriable`` steps may fail and then succeed; steps sharing a
    ``one_of`` label are alternatives (at most one of them succeeds). ``timeout`` (seconds) says the system gives
    up waiting for the step's outcome that long after the step is triggered and takes its time-out path (the
    targeted phase then holds one of the step's outcomes back beyond it).
    """

    name: str
    service: str
    success: str
    failure: str | None = None
    compensation: str | None = None
    after: tuple[str, ...] = ()
    optional: bool = False
    retriable: bool = False
    one_of: str | None = None
    timeout: float | None = None  # seconds the system waits for the outcome before its time-out path


@dataclass(frozen=True)
class SagaSpec:
    """A choreographed saga: correlation key, start event, steps and terminal events.

    ``key`` is a field of every event's JSON payload, or a dotted path into it (``data.order_id``);
    ``event_id`` likewise names the field that identifies an event (wire duplicates share it).
    ``compensation_order`` is ``"any"`` (compensations of different steps in any order) or ``"reverse"``
    (a cascade: a step is undone only after every step that came after it was undone).
    """

    name: str
    key: str
    start: str
    success: tuple[str, ...]
    abort: tuple[str, ...]
    steps: tuple[StepSpec, ...]
    deadline: float = 30.0
    event_id: str = "event_id"
    compensation_order: str = "any"
    latency_objective: float | None = None  # a saga that ends later than this (after its start) fails the run
    status: StatusReadSpec | None = None  # how a client reads a saga's state ([sagas.NAME.status])

    def key_of(self, data: Any) -> Any:
        """The correlation key in an event payload (None when it has none)."""
        return field_at(data, self.key)

    def step(self, name: str) -> StepSpec:
        """The step called ``name``."""
        for st in self.steps:
            if st.name == name:
                return st
        raise KeyError(name)


def field_at(data: Any, path: str) -> Any:
    """The value at ``path`` in a JSON object: the field of that exact name, else the dotted path into
    nested objects (``"data.order_id"``); None when there is none."""
    if not isinstance(data, dict):
        return None
    value = data.get(path)
    if value is not None or "." not in path:
        return value
    for part in path.split("."):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


@dataclass(frozen=True)
class WorkloadSpec:
    """How sagas are started during a run."""

    sagas: int = 20
    rate: float = 20.0
    concurrency: int = 8
    via: str = "http"
    service: str | None = None
    method: str = "POST"
    path: str = "/"
    subject: str | None = None
    body: str | None = None
    saga: str | None = None
    key: str | None = None
    max_open: int | None = None  # sagas open at once (None: half a deadline's worth of starts, see open_limit)
    headers: dict[str, str] = field(default_factory=dict)  # per request; {request_id} and {index} expanded
    idempotency_key: str | None = None  # a header carrying the request's id, the same on each retry of it
    duplicate: float = 0.0  # the fraction of start requests sent twice (a duplicate-request fault of the client)

    def request_headers(self, index: int, request_id: str) -> dict[str, str]:
        """The headers of start request ``index``, whose id is ``request_id`` (kept across its retries)."""
        values = {"request_id": request_id, "index": str(index)}
        out = {k: expand(v, values) for k, v in self.headers.items()}
        if self.idempotency_key:
            out[self.idempotency_key] = request_id
        return out

    def open_limit(self, deadline: float = 10.0) -> int:
        """How many sagas may be open at once before the workload waits for some to end: ``max_open``, or by
        default as many as start within half a saga `deadline` (more open than that and the system is well behind;
        a backlog that size drains in seconds once the faults heal)."""
        return self.max_open if self.max_open is not None else max(self.concurrency, int(self.rate * deadline / 2))


@dataclass(frozen=True)
class QuiescenceSpec:
    """When the broker's view says the system is done: quiet for `hold`, or give up waiting after `timeout`."""

    hold: float = 1.0
    timeout: float | None = None  # with no saga ending; None: three times the longest saga deadline, at least 30 s


@dataclass(frozen=True)
class InvariantSpec:
    """A named Python callable (module:function) checked over the services' state."""

    name: str
    target: str


@dataclass(frozen=True)
class ChaosSpec:
    """Chaos defaults: the fault menu, its intensity, and an optional external Toxiproxy."""

    faults: tuple[str, ...] = ("latency", "partition", "cut", "kill", "pause", "duplicate")
    intensity: float = 0.5
    toxiproxy_url: str | None = None
    enabled: bool = True
    schedule_tolerance: float = 0.1  # fraction of planned faults that may fail or start too late
    phases: tuple[str, ...] = ("targeted", "random")  # the nemesis's phases: aimed windows, the seeded schedule


@dataclass(frozen=True)
class PactTrigger:
    """How to make a provider emit the message a pact describes, and where to capture it."""

    description: str | None
    state: str | None
    capture: str
    http: dict[str, Any] | None = None
    publish: dict[str, Any] | None = None
    timeout: float = 10.0


@dataclass(frozen=True)
class PactsSpec:
    """Where the consumers' message pacts live and how each is triggered on the live provider."""

    dir: Path | None = None
    triggers: tuple[PactTrigger, ...] = ()


@dataclass(frozen=True)
class SystemSpec:
    """The whole system file, validated."""

    path: Path
    root: Path
    nats: NatsSpec
    services: dict[str, ServiceSpec]
    sagas: dict[str, SagaSpec]
    workload: WorkloadSpec
    invariants: tuple[InvariantSpec, ...]
    invariant_timeout: float
    chaos: ChaosSpec
    contract_schemas: tuple[dict[str, Any], ...] = ()
    pacts: PactsSpec = PactsSpec()
    env: dict[str, str] = field(default_factory=dict)
    quiescence: QuiescenceSpec = QuiescenceSpec()
    reads: ReadsSpec = field(default_factory=lambda: ReadsSpec())
    accept_undecided: tuple[str, ...] = ()  # [contracts] accept_undecided: channels whose undecided pairs pass
    plugins: tuple[str, ...] = ()  # [plugins] modules, as named (loaded when the file was loaded)

    def processes(self) -> dict[str, ServiceSpec]:
        """Every process of the system by name: a service, or each replica of one (``NAME-1`` .. ``NAME-N``)."""
        out: dict[str, ServiceSpec] = {}
        for name, svc in self.services.items():
            if svc.replicas > 1:
                for i in range(1, svc.replicas + 1):
                    out[f"{name}-{i}"] = svc.replica_spec(i)
            else:
                out[name] = svc
        return out

    def groups(self) -> dict[str, str]:
        """Process name -> the service it is a replica of, for the services with replicas."""
        return {proc: spec.service for proc, spec in self.processes().items() if spec.group is not None}

    def contract_sources(self) -> dict[str, list[Path]]:
        """Service name -> its contract files, for the contracts package."""
        return {name: list(svc.contracts) for name, svc in self.services.items() if svc.contracts}


# --------------------------------------------------------------------------- helpers


class _Ctx:
    """Where we are in the file, to name it in error messages."""

    def __init__(self, path: Path, display: str):
        self.path = path
        self.display = display

    def fail(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"{self.display}: {key}: {message}")


def _suggest(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    if close:
        return f"did you mean '{close[0]}'?"
    return f"valid keys are: {', '.join(choices)}."


def _check_keys(ctx: _Ctx, where: str, table: dict[str, Any], allowed: list[str]) -> None:
    for key in table:
        if key not in allowed:
            name = f"{where}.{key}" if where else key
            raise ctx.fail(name, f"unknown key '{key}'; {_suggest(key, allowed)} Remove it or fix its spelling.")


def _typename(value: Any) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "a boolean", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _get(ctx: _Ctx, where: str, table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any = None,
         *, required: bool = False, example: str = "") -> Any:
    name = f"{where}.{key}" if where else key
    if key not in table:
        if required:
            hint = f" (for example {example})" if example else ""
            raise ctx.fail(name, f"is missing; add it{hint}.")
        return default
    value = table[key]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        want = " or ".join(_typename(k()) if k not in (tuple,) else "a list" for k in kinds)
        raise ctx.fail(name, f"must be {want}, not {_typename(value)} ({value!r}).")
    return value


def parse_duration(value: Any) -> float | None:
    """Seconds from a number or a string like '500ms', '30s', '2m', '1h'; None if not a duration."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if value >= 0 else None
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            return None
        n = float(m.group(1))
        unit = m.group(2) or "s"
        return n * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
    return None


def _duration(ctx: _Ctx, where: str, table: dict[str, Any], key: str, default: float) -> float:
    if key not in table:
        return default
    seconds = parse_duration(table[key])
    if seconds is None:
        raise ctx.fail(f"{where}.{key}", f"must be a duration such as 500ms, 30s or 2m, not {table[key]!r}.")
    return seconds


def _check_placeholders(ctx: _Ctx, key: str, text: str) -> None:
    for m in _PLACEHOLDER_RE.finditer(text):
        if m.group(1) not in PLACEHOLDERS:
            raise ctx.fail(key, f"unknown placeholder '{{{m.group(1)}}}'; the placeholders are "
                                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)} (write '{{{{' for a literal brace).")


def expand(text: str, values: dict[str, str]) -> str:
    """Replace {placeholder}s in a command or env value ('{{' and '}}' are literal braces)."""
    out = _PLACEHOLDER_RE.sub(lambda m: values.get(m.group(1), m.group(0)), text.replace("{{", "\0").replace("}}", "\1"))
    return out.replace("\0", "{").replace("\1", "}")


def _str_list(ctx: _Ctx, where: str, table: dict[str, Any], key: str, *, default: tuple[str, ...] = (),
              required: bool = False, example: str = "") -> tuple[str, ...]:
    value = _get(ctx, where, table, key, (list, str), None, required=required, example=example)
    if value is None:
        return default
    if isinstance(value, str):
        return (value,)
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ctx.fail(f"{where}.{key}[{i}]", f"must be a string, not {_typename(item)} ({item!r}).")
    return tuple(value)


# --------------------------------------------------------------------------- sections


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
    saga = _get(ctx, w, raw, "saga", str)
    if saga is not None and saga not in saga_specs:
        raise ctx.fail("workload.saga", f"names saga '{saga}', which is not defined; "
                                        f"{_suggest(saga, sorted(saga_specs)) if saga_specs else 'add a [sagas.' + saga + '] table.'}")
    if saga is None and len(saga_specs) > 1 and raw:
        if via == "publish":
            saga = next((n for n, sg in saga_specs.items() if sg.start == subject), None)
        if saga is None:
            raise ctx.fail("workload.saga", f"is missing; the system has {len(saga_specs)} sagas, so name the one a "
                                            f"start request begins, e.g. saga = \"{next(iter(saga_specs))}\".")
    key = _get(ctx, w, raw, "key", str)
    max_open = _get(ctx, w, raw, "max_open", int)
    if max_open is not None and max_open < 1:
        raise ctx.fail("workload.max_open", f"must be at least 1 saga open at once, not {max_open}.")
    headers: dict[str, str] = {}
    for k, v in _get(ctx, w, raw, "headers", dict, {}).items():
        if not isinstance(v, str):
            raise ctx.fail(f"workload.headers.{k}", f"must be a string, not {_typename(v)} ({v!r}).")
        if not re.match(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$", k):
            raise ctx.fail(f"workload.headers.{k}", "is not a valid header name (letters, digits and -); fix it.")
        for m in _PLACEHOLDER_RE.finditer(v.replace("{{", "").replace("}}", "")):
            if m.group(1) not in ("request_id", "index"):
                raise ctx.fail(f"workload.headers.{k}", f"unknown placeholder '{{{m.group(1)}}}'; the placeholders of "
                                                        f"workload headers are {{request_id}} and {{index}}.")
        headers[k] = v
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


# --------------------------------------------------------------------------- entry points


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


# --------------------------------------------------------------------------- attach mode (a deployed system)

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


# --------------------------------------------------------------------------- status reads ([sagas.NAME.status], [reads])

STATUS_VIAS = ("http", "nats", "kv")


@dataclass(frozen=True)
class StatusReadSpec:
    """How a client reads one saga instance's state: ``via`` is ``"http"`` (a GET to ``service`` on ``path``,
    the key in the path or query as ``{key}``), ``"nats"`` (a request on ``subject`` with ``{key}`` in it,
    the answer's JSON) or ``"kv"`` (the JetStream key-value ``bucket``, entry ``key`` with ``{key}`` in it);
    ``field`` is the dotted path of the status in the JSON answer; ``pending``, ``success`` and ``abort`` are
    the values that mean the saga is still running, ended in success, or ended in abort."""

    via: str
    field: str
    pending: tuple[str, ...]
    success: tuple[str, ...]
    abort: tuple[str, ...]
    service: str | None = None
    path: str | None = None
    subject: str | None = None
    bucket: str | None = None
    key: str | None = None
    timeout: float = 2.0

    def meaning(self, value: Any) -> str | None:
        """``"pending"``, ``"success"``, ``"abort"`` for a declared value, None for any other."""
        text = None if value is None or isinstance(value, dict | list) else str(value)
        for name, values in (("pending", self.pending), ("success", self.success), ("abort", self.abort)):
            if text in values:
                return name
        return None

    def where(self, key: str) -> str:
        """The read's target for this key, for people: ``GET order /orders/42``, ``request shop.status.42``..."""
        from urllib.parse import quote

        if self.via == "http":
            return f"GET {self.service} {str(self.path).replace('{key}', quote(key, safe=''))}"
        if self.via == "nats":
            return f"request {str(self.subject).replace('{key}', key)}"
        return f"kv {self.bucket} {str(self.key).replace('{key}', key)}"


@dataclass(frozen=True)
class ReadsSpec:
    """How the run reads the sagas' status: a ``sample`` (0..1) of the sagas read at random moments while they
    run, then every saga once after the system is quiescent; at most ``rate`` reads per second and
    ``concurrency`` in flight; ``enabled = false`` turns the reads off."""

    sample: float = 0.2
    rate: float = 200.0
    concurrency: int = 4
    enabled: bool = True


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
