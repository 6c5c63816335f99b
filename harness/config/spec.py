"""The system file as data: the frozen dataclasses a validated system file becomes (:class:`SystemSpec` and
its parts)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagaproof.harness.config.fields import expand

SYSTEM_FILE = "sagaproof.toml"

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

    sample: float = 0.5
    rate: float = 200.0
    concurrency: int = 4
    enabled: bool = True
