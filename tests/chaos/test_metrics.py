"""`/metrics` as the reference server serves it with `-proxy-metrics` / `-runtime-metrics`.

The proxy counters have the reference's names and labels and, as there, a link's bytes are added
when the link ends. Without a metrics flag the route does not exist (404), as in the reference.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
import requests
import sagaproof.chaos.toxiproxy as tp
from chaos_testkit import LoopThread, close_sockets, connect, recv_exactly, start_echo
from prometheus_client.parser import text_string_to_metric_families


class MetricsEnv:
    def __init__(self, **flags: bool) -> None:
        self.loop = LoopThread()
        self.server = self.loop.run(tp.serve(**flags))
        self.echo = self.loop.run(start_echo())
        self.echo_addr = f"127.0.0.1:{self.echo.sockets[0].getsockname()[1]}"
        self.http = requests.Session()

    def proxy(self, name: str) -> tuple[str, int]:
        body = {"name": name, "listen": "127.0.0.1:0", "upstream": self.echo_addr}
        listen = self.http.post(self.server.url + "/proxies", json=body, timeout=10).json()["listen"]
        host, port = listen.rsplit(":", 1)
        return host, int(port)

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        resp = self.http.get(self.server.url + "/metrics", timeout=10)
        assert resp.status_code == 200, resp.text
        assert resp.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text)
            for s in family.samples
        }

    def wait_for(self, name: str, labels: dict[str, str], value: float) -> dict:
        """Poll until the sample has the value (counters are added when the connection closes)."""
        key = (name, tuple(sorted(labels.items())))
        deadline = time.monotonic() + 30
        samples = self.samples()
        while samples.get(key) != value and time.monotonic() < deadline:
            time.sleep(0.02)
            samples = self.samples()
        assert samples.get(key) == value, (key, {k: v for k, v in samples.items() if k[0] == name})
        return samples

    def close(self) -> None:
        close_sockets()
        self.http.close()
        self.loop.run(self.server.close())
        self.echo.close()
        self.loop.stop()


@pytest.fixture
def metrics_env(request: pytest.FixtureRequest) -> Iterator[MetricsEnv]:
    env = MetricsEnv(**request.param)
    try:
        yield env
    finally:
        env.close()


@pytest.mark.parametrize("metrics_env", [{"proxy_metrics": True}], indirect=True)
def test_proxy_byte_counters_with_reference_names_and_labels(metrics_env: MetricsEnv) -> None:
    addr = metrics_env.proxy("echo")
    labels = {"proxy": "echo", "listener": f"127.0.0.1:{addr[1]}", "upstream": metrics_env.echo_addr}
    sock = connect(addr)
    sock.sendall(b"x" * 1000)
    assert recv_exactly(sock, 1000) == b"x" * 1000
    sock.close()
    samples = metrics_env.wait_for("toxiproxy_proxy_received_bytes_total", {"direction": "upstream", **labels}, 1000)
    for direction in ("upstream", "downstream"):
        d = {"direction": direction, **labels}
        samples = metrics_env.wait_for("toxiproxy_proxy_sent_bytes_total", d, 1000)
        assert samples[("toxiproxy_proxy_received_bytes_total", tuple(sorted(d.items())))] == 1000
    assert not any(name.startswith(("process_", "python_")) for name, _ in samples)  # runtime metrics are off


@pytest.mark.parametrize("metrics_env", [{"proxy_metrics": True}], indirect=True)
def test_a_toxic_that_drops_data_shows_received_above_sent(metrics_env: MetricsEnv) -> None:
    addr = metrics_env.proxy("drop")
    metrics_env.http.post(
        metrics_env.server.url + "/proxies/drop/toxics",
        json={"type": "timeout", "stream": "upstream", "attributes": {"timeout": 0}},
        timeout=10,
    )
    labels = {"direction": "upstream", "proxy": "drop", "listener": f"127.0.0.1:{addr[1]}", "upstream": metrics_env.echo_addr}
    sock = connect(addr)
    sock.sendall(b"y" * 500)
    time.sleep(0.05)  # let the proxy read it before the close (received counts what was read)
    sock.close()
    samples = metrics_env.wait_for("toxiproxy_proxy_received_bytes_total", labels, 500)
    assert samples.get(("toxiproxy_proxy_sent_bytes_total", tuple(sorted(labels.items())))) == 0


@pytest.mark.parametrize("metrics_env", [{"runtime_metrics": True}], indirect=True)
def test_runtime_metrics_alone(metrics_env: MetricsEnv) -> None:
    metrics_env.proxy("idle")
    samples = metrics_env.samples()
    names = {name for name, _labels in samples}
    assert {"process_cpu_seconds_total", "process_resident_memory_bytes", "python_info"} <= names
    assert not any(name.startswith("toxiproxy_") for name in names)


@pytest.mark.parametrize("metrics_env", [{"proxy_metrics": True}], indirect=True)
def test_metrics_route_has_the_api_middleware(metrics_env: MetricsEnv) -> None:
    url = metrics_env.server.url + "/metrics"
    resp = requests.post(url, timeout=10)  # any method, as the reference's handler
    assert resp.status_code == 200 and re.fullmatch(r"[0-9a-v]{20}", resp.headers["X-Toxiproxy-Request-Id"])
    assert requests.get(url, headers={"User-Agent": "Mozilla/5.0"}, timeout=10).status_code == 403


@pytest.mark.parametrize(
    ("argv", "proxy", "runtime"),
    [
        (["-proxy-metrics", "-runtime-metrics"], True, True),
        (["--proxy-metrics"], True, False),
        (["-runtime-metrics=true", "-proxy-metrics=false"], False, True),
        ([], False, False),
    ],
)
def test_standalone_metrics_flags(argv: list[str], proxy: bool, runtime: bool) -> None:
    """The reference's one-dash flags (with Go's `=bool`) and our two-dash spelling, on `sagaproof toxiproxy`."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagaproof", "toxiproxy", "-port", "0", *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        found = re.match(r"sagaproof toxiproxy listening on (http://127\.0\.0\.1:\d+)", line)
        assert found, (line, proc.stderr.read() if proc.poll() is not None else "")  # type: ignore[union-attr]
        resp = requests.get(found.group(1) + "/metrics", timeout=10)
        if not (proxy or runtime):
            assert resp.status_code == 404
            return
        assert resp.status_code == 200
        names = {f.name for f in text_string_to_metric_families(resp.text)}
        assert ("process_cpu_seconds" in names) == runtime, names
        # a counter family appears once a link has ended; its TYPE line is there from the start
        assert ("# TYPE toxiproxy_proxy_received_bytes_total counter" in resp.text) == proxy, resp.text[:300]
    finally:
        proc.terminate()
        proc.communicate(timeout=10)
