"""The declared JetStream streams and consumers of a system, created on the harness's NATS (or checked on the
team's): ``nats.js`` configurations from the system file's ``[[nats.streams]]``."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from sagaproof.harness.config import ConsumerSpec, StreamSpec, SystemSpec
from sagaproof.harness.errors import EnvironmentStartError
from sagaproof.harness.events import hide_password

__all__ = ["consumer_config", "create_streams", "stream_config"]


async def create_streams(urls: list[str], spec: SystemSpec, replicas_default: int,
                          options: dict[str, Any] | None = None) -> None:
    import nats
    from nats.js.errors import BadRequestError, ServiceUnavailableError

    seen: list[str] = []

    async def error_cb(exc: Exception) -> None:  # nats-py prints a traceback without one
        seen.append(f"{type(exc).__name__}: {exc}".strip())

    try:
        nc = await nats.connect(servers=urls, connect_timeout=5, max_reconnect_attempts=5, allow_reconnect=True,
                                error_cb=error_cb, **(options or {}))
    except Exception as exc:  # noqa: BLE001 - nats-py raises many kinds; all mean "cannot reach NATS"
        if spec.nats.embedded:
            raise
        # The server's refusal ("Authorization Violation") says most; a reset that follows it says little.
        auth = [e for e in seen if "authori" in e.lower() or "authentication" in e.lower()]
        why = (auth or seen or [f"{type(exc).__name__}: {exc}"])[-1]
        raise EnvironmentStartError(f"NATS at {hide_password(spec.nats.url or '')} could not be reached "
                                    f"({why}); check nats.url and its credentials and TLS settings.") from exc
    try:
        js = nc.jetstream(timeout=10)
        for s in spec.nats.streams:
            cfg = stream_config(s, replicas_default)
            deadline = time.monotonic() + 30
            while True:
                try:
                    try:
                        await js.add_stream(cfg)
                    except BadRequestError as exc:
                        if "already in use" in str(exc) or getattr(exc, "err_code", 0) == 10058:
                            await js.update_stream(cfg)
                        elif "no suitable peers" in str(exc) and time.monotonic() < deadline:
                            await asyncio.sleep(0.2)  # a cluster still forming: its peers come
                            continue
                        else:
                            raise EnvironmentStartError(
                                f"JetStream refused stream '{s.name}' ({exc.description}); "
                                f"fix [[nats.streams]] in the system file.") from exc
                    for c in s.consumers:
                        try:
                            await js.add_consumer(s.name, consumer_config(c))
                        except BadRequestError as exc:
                            raise EnvironmentStartError(
                                f"JetStream refused consumer '{c.name}' on stream '{s.name}' ({exc.description}); "
                                f"fix [[nats.streams.consumers]] in the system file.") from exc
                    break
                except (ServiceUnavailableError, TimeoutError, nats.errors.TimeoutError,
                        nats.errors.NoRespondersError) as err:
                    if time.monotonic() > deadline:
                        raise EnvironmentStartError(
                            f"JetStream did not accept stream '{s.name}' within 30s (no meta leader?); "
                            f"see the nats logs in the report directory.") from err
                    await asyncio.sleep(0.2)
    finally:
        await nc.close()


def stream_config(s: StreamSpec, replicas_default: int) -> Any:
    """The nats-py StreamConfig of a declared stream."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig, StreamSource

    cfg = StreamConfig(
        name=s.name, subjects=list(s.subjects) or None, num_replicas=s.replicas or replicas_default,
        storage=StorageType.MEMORY if s.storage == "memory" else StorageType.FILE,
        retention={"limits": RetentionPolicy.LIMITS, "workqueue": RetentionPolicy.WORK_QUEUE,
                   "interest": RetentionPolicy.INTEREST}[s.retention],
        discard=DiscardPolicy.NEW if s.discard == "new" else DiscardPolicy.OLD,
    )
    if s.duplicate_window is not None:
        cfg.duplicate_window = s.duplicate_window
    if s.max_age is not None:
        cfg.max_age = s.max_age
    if s.max_msgs is not None:
        cfg.max_msgs = s.max_msgs
    if s.max_bytes is not None:
        cfg.max_bytes = s.max_bytes
    if s.max_msgs_per_subject is not None:
        cfg.max_msgs_per_subject = s.max_msgs_per_subject
    if s.mirror is not None:
        cfg.mirror = StreamSource(name=s.mirror)
    if s.sources:
        cfg.sources = [StreamSource(name=n) for n in s.sources]
    return cfg


def consumer_config(c: ConsumerSpec) -> Any:
    """The nats-py ConsumerConfig of a declared durable consumer."""
    from nats.js.api import AckPolicy, ConsumerConfig

    cfg = ConsumerConfig(durable_name=c.name, ack_policy={"explicit": AckPolicy.EXPLICIT, "all": AckPolicy.ALL,
                                                          "none": AckPolicy.NONE}[c.ack_policy])
    if len(c.filter_subjects) == 1:
        cfg.filter_subject = c.filter_subjects[0]
    elif c.filter_subjects:
        cfg.filter_subjects = list(c.filter_subjects)
    if c.ack_wait is not None:
        cfg.ack_wait = c.ack_wait
    if c.max_deliver is not None:
        cfg.max_deliver = c.max_deliver
    if c.deliver_subject is not None:
        cfg.deliver_subject = c.deliver_subject
        cfg.deliver_group = c.deliver_group
    return cfg
