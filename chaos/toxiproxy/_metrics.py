"""Prometheus metrics on `/metrics`, as the reference server's `-proxy-metrics` and `-runtime-metrics`.

Proxy metrics have the reference's names and labels:

* `toxiproxy_proxy_received_bytes_total`: bytes read from a link's source;
* `toxiproxy_proxy_sent_bytes_total`: bytes written to a link's destination (not added when a
  write failed), so a toxic that drops data shows received > sent;

each labelled `direction` (upstream/downstream), `proxy`, `listener` and `upstream`, with the
values the proxy had when the connection opened. As in the reference, a link's bytes are added
when the link ends (its connection closes), not while data flows.

Runtime metrics are prometheus-client's process and Python collectors (`process_*`,
`python_info`, `python_gc_*`), the counterparts of the Go server's `go_*` and `process_*`.
Each server has its own registry, so several embedded servers in one process do not mix.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

_LABELS = ["direction", "proxy", "listener", "upstream"]


class Metrics:
    """The registry behind one server's `/metrics`."""

    def __init__(self, *, proxy: bool, runtime: bool) -> None:
        from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

        self.proxy = proxy
        self.runtime = runtime
        self.received: dict[tuple[str, str, str, str], int] = {}
        self.sent: dict[tuple[str, str, str, str], int] = {}
        self.registry = CollectorRegistry(auto_describe=True)
        if proxy:
            self.registry.register(_ProxyCollector(self))
        if runtime:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)

    def link_ended(self, conn: Any) -> None:
        """Add the bytes of both links of a connection that just closed."""
        if not self.proxy:
            return
        name, listener, upstream = conn.labels
        for link, sink in zip((conn.up, conn.down), conn.sinks, strict=True):
            key = (link.direction, name, listener, upstream)
            self.received[key] = self.received.get(key, 0) + link.received
            if not sink.failed:
                self.sent[key] = self.sent.get(key, 0) + sink.sent

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition (format 0.0.4, as the Go client serves by default)."""
        from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_PLAIN_0_0_4


class _ProxyCollector:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        for name, values, text in (
            ("toxiproxy_proxy_received_bytes_total", self.metrics.received, "Bytes read from a link's source."),
            ("toxiproxy_proxy_sent_bytes_total", self.metrics.sent, "Bytes written to a link's destination."),
        ):
            family = CounterMetricFamily(name, text, labels=_LABELS)
            for key, value in sorted(values.items()):
                family.add_metric(list(key), value)
            yield family
