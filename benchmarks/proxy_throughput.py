"""Benchmark: what the fault proxy costs, versus going direct, in the same run.

Runs the Toxiproxy-compatible server standalone in its own process (as `sagaproof toxiproxy`),
a TCP echo server and a nats-server in theirs, and measures from this process:

* TCP: bulk MB/s through an echo (bytes cross the proxy twice) and 1-byte round-trip p50/p99;
* NATS (nats-py): request/reply round-trip p50/p99 with both clients behind a proxy (each round trip
  crosses the proxy four times) and pub/sub msgs/s with 1 KiB messages;

each direct, through a proxy with no toxics, with one latency toxic (0 ms) per direction, and with
one NATS message toxic (nats_drop on a subject that never matches, so every frame is parsed) per
direction (NATS figures only). Prints every figure and its ratio to direct. Everything is on loopback, bounded in count.

    python benchmarks/proxy_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nats
import requests

ECHO = r"""
import asyncio
async def h(r, w):
    try:
        while d := await r.read(65536):
            w.write(d); await w.drain()
    except ConnectionError:
        pass
    w.close()
async def main():
    s = await asyncio.start_server(h, "127.0.0.1", 0)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
"""


def spawn(args: list[str], pattern: str, timeout: float = 10.0) -> tuple[subprocess.Popen, re.Match]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        found = re.search(pattern, line)
        if found:
            # keep reading its output so it can never block on a full pipe
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, found
    proc.kill()
    raise RuntimeError(f"{args[0]} did not start")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def tcp_bulk(addr: tuple[str, int], total: int) -> float:
    """MB/s of `total` bytes sent through an echo and read back."""
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    block = os.urandom(64 * 1024)
    t0 = time.perf_counter()
    sent = received = 0
    sock.setblocking(False)
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    while received < total:
        for _key, events in sel.select(5):
            if events & selectors.EVENT_WRITE and sent < total:
                try:
                    sent += sock.send(block[: min(len(block), total - sent)])
                except BlockingIOError:
                    pass
                if sent >= total:
                    sel.modify(sock, selectors.EVENT_READ)
            if events & selectors.EVENT_READ:
                try:
                    data = sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                if not data:
                    raise RuntimeError("echo closed early")
                received += len(data)
    elapsed = time.perf_counter() - t0
    sock.close()
    return total / elapsed / 1e6


def tcp_rtt(addr: tuple[str, int], count: int) -> list[float]:
    sock = socket.create_connection(addr)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    out = []
    for _ in range(count):
        t0 = time.perf_counter()
        sock.sendall(b"x")
        if not sock.recv(1):
            raise RuntimeError("echo closed")
        out.append(time.perf_counter() - t0)
    sock.close()
    return out


async def nats_figures(
    req_url: str, resp_url: str, pub_url: str, sub_url: str, requests_n: int, msgs_n: int
) -> tuple[list[float], float]:
    responder = await nats.connect(resp_url)
    requester = await nats.connect(req_url)

    async def reply(msg: nats.aio.msg.Msg) -> None:
        await msg.respond(msg.data)

    await responder.subscribe("bench.rpc", cb=reply)
    await responder.flush()
    for _ in range(50):  # warm up
        await requester.request("bench.rpc", b"w", timeout=5)
    rtts = []
    for _ in range(requests_n):
        t0 = time.perf_counter()
        await requester.request("bench.rpc", b"ping", timeout=5)
        rtts.append(time.perf_counter() - t0)
    await requester.close()
    await responder.close()

    sub = await nats.connect(sub_url, pending_size=256 * 1024 * 1024)
    pub = await nats.connect(pub_url, pending_size=256 * 1024 * 1024)
    done = asyncio.Event()
    got = 0

    async def on_msg(_msg: nats.aio.msg.Msg) -> None:
        nonlocal got
        got += 1
        if got >= msgs_n:
            done.set()

    s = await sub.subscribe("bench.flow", cb=on_msg, pending_msgs_limit=msgs_n * 2, pending_bytes_limit=-1)
    await sub.flush()
    payload = os.urandom(1024)
    t0 = time.perf_counter()
    for i in range(msgs_n):
        await pub.publish("bench.flow", payload)
        if i % 1000 == 999:
            await pub.flush(timeout=10)  # keep the publisher from outrunning the socket
    await pub.flush(timeout=10)
    await asyncio.wait_for(done.wait(), 60)
    rate = msgs_n / (time.perf_counter() - t0)
    await s.unsubscribe()
    await pub.close()
    await sub.close()
    return rtts, rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (for CI smoke runs)")
    args = parser.parse_args(argv)
    bulk = (32 if args.quick else 128) * 1024 * 1024
    rtt_n = 1000 if args.quick else 3000
    req_n = 500 if args.quick else 2000
    msgs_n = 5000 if args.quick else 30000

    procs: list[subprocess.Popen] = []
    tmp = tempfile.TemporaryDirectory()
    try:
        nats_bin = str(Path(sys.executable).parent / "nats-server")
        p, m = spawn(
            [nats_bin, "-a", "127.0.0.1", "-p", "-1", "-sd", tmp.name],
            r"Listening for client connections on 127\.0\.0\.1:(\d+)",
        )
        procs.append(p)
        nats_addr = f"127.0.0.1:{m.group(1)}"
        p, m = spawn([sys.executable, "-c", ECHO], r"^(\d+)$")
        procs.append(p)
        echo_addr = f"127.0.0.1:{m.group(1)}"
        code = "import chaos.toxiproxy as t, sys; sys.exit(t.main(['--port', '0']))"
        p, m = spawn([sys.executable, "-c", code], r"listening on (http://\S+)")
        procs.append(p)
        api = m.group(1)
        http = requests.Session()

        def make(name: str, upstream: str) -> str:
            r = http.post(
                f"{api}/proxies",
                json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream},
                timeout=10,
            )
            r.raise_for_status()
            return r.json()["listen"]

        p_echo = make("echo", echo_addr)
        p_a = make("svc_a", nats_addr)
        p_b = make("svc_b", nats_addr)

        def set_toxics(kind: str | None) -> None:
            http.post(f"{api}/reset", timeout=10).raise_for_status()
            if kind is None:
                return
            for proxy in ("echo", "svc_a", "svc_b") if kind == "latency" else ("svc_a", "svc_b"):
                for stream in ("upstream", "downstream"):
                    attrs = (
                        {"latency": 0}
                        if kind == "latency"
                        else {"subject": "never.matches", "probability": 1.0}
                    )
                    toxic = "latency" if kind == "latency" else "nats_drop"
                    r = http.post(
                        f"{api}/proxies/{proxy}/toxics",
                        json={"type": toxic, "stream": stream, "attributes": attrs},
                        timeout=10,
                    )
                    r.raise_for_status()

        def addr(text: str) -> tuple[str, int]:
            host, port = text.rsplit(":", 1)
            return host, int(port)

        rows = []
        configs = [
            ("direct", None, echo_addr, nats_addr, nats_addr),
            ("proxy", None, p_echo, p_a, p_b),
            ("proxy+latency", "latency", p_echo, p_a, p_b),
            ("proxy+nats_drop", "nats", p_echo, p_a, p_b),
        ]
        for label, toxic, e_addr, a_addr, b_addr in configs:
            set_toxics(toxic)
            print(f"measuring {label} ...", file=sys.stderr, flush=True)
            if toxic == "nats":  # a NATS toxic on a non-NATS stream is a misuse: no TCP figures
                mbps, rtt = float("nan"), [float("nan")]
            else:
                mbps = tcp_bulk(addr(e_addr), bulk)
                rtt = tcp_rtt(addr(e_addr), rtt_n)
            nrtt, rate = asyncio.run(
                nats_figures(
                    f"nats://{a_addr}",
                    f"nats://{b_addr}",
                    f"nats://{a_addr}",
                    f"nats://{b_addr}",
                    req_n,
                    msgs_n,
                )
            )
            rows.append(
                (
                    label,
                    mbps,
                    statistics.median(rtt),
                    pct(rtt, 0.99),
                    statistics.median(nrtt),
                    pct(nrtt, 0.99),
                    rate,
                )
            )

        base = rows[0]
        print(
            f"{'config':<16} {'TCP MB/s':>9} {'ratio':>6} {'TCP p50 us':>11} {'+us':>6} {'TCP p99 us':>11} "
            f"{'NATS rr p50 us':>15} {'+us':>6} {'NATS rr p99 us':>15} {'msgs/s 1KiB':>12} {'ratio':>6}"
        )
        for label, mbps, t50, t99, n50, n99, rate in rows:
            print(
                f"{label:<16} {mbps:9.1f} {mbps / base[1]:6.2f} {t50 * 1e6:11.0f} {(t50 - base[2]) * 1e6:6.0f} {t99 * 1e6:11.0f} "
                f"{n50 * 1e6:15.0f} {(n50 - base[4]) * 1e6:6.0f} {n99 * 1e6:15.0f} {rate:12.0f} {rate / base[6]:6.2f}"
            )
        print(
            f"(TCP: {bulk // (1024 * 1024)} MiB echoed, {rtt_n} round trips; NATS: {req_n} requests, {msgs_n} messages; "
            "NATS request/reply crosses the proxy 4 times)"
        )
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
