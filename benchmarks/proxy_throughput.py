"""Benchmark: what the fault proxy costs against going direct, on an idle machine and with a core busy.

Starts, as real processes: the Toxiproxy-compatible server standalone (`sagaproof toxiproxy`), a TCP
server (echo, sink and source modes) and a nats-server with JetStream. Everything else runs in this
process, on loopback, with bounded counts. Each figure is measured direct and through the proxy in the
same run, and every ratio is against the direct figure of the same phase.

The whole table is printed twice: once on an idle machine, once with one core kept busy by a process
this benchmark starts (a Python busy loop) and stops before it exits.

Per phase:

* TCP through the proxy (client -> proxy -> server): bulk upload and download MB/s, 1-byte ping
  round-trip p50/p99; direct, through a proxy without toxics, and with a 0 ms latency toxic each way;
* bandwidth toxic (downstream, on from the start) asked for 5, 20 and 50 MB/s: delivered / asked;
* NATS (nats-py): request/reply p50/p99 with requester and responder each behind its own proxy (a round
  trip crosses the proxy 4 times) and pub/sub msgs/s with 1 KiB messages; direct, proxy, proxy with a
  0 ms latency toxic each way, and with a `nats_drop` toxic each way that never matches (every frame parsed);
* the recorder (harness/session/recorder.py) with live contract validation, against a bare nats-py ordered
  consumer, each reading the same JetStream stream of N stored messages: msgs/s, and whether all arrived
  (benchmarks/recorder_throughput.py, which also runs on its own and explains how it measures).

Targets from issue 13 are printed as PASS/FAIL beside the figures they apply to.

Against the real Toxiproxy (the Go server; `--real-toxiproxy PATH` or SAGAPROOF_REAL_TOXIPROXY names its
`toxiproxy-server` binary, built from source with ../shared/tools/build_real_toxiproxy.sh), started beside
ours in the same run with the same proxies: the TCP figures above take it in turn with the others (same
moments), pings also give p90 and the share over 1 ms, and each figure of ours is divided by the real
one's; plus proxy creation + deletion (ms per pair, taken in alternating blocks), 1,000 connections
opened at once (how long until all are through, and how many SYNs were dropped and sent again, read from
TCP_INFO) and the resident memory of each server just after start. The targets of issue 24 are marked
PASS/FAIL. Without a binary it says so and measures against going direct only.

    python benchmarks/proxy_throughput.py [--quick] [--phases idle,busy] [--server-pythonpath DIR]
                                          [--server-loop uvloop|asyncio] [--real-toxiproxy PATH]
                                          [--sections tcp,nats,bandwidth,recorder,real] [--baseline-tree DIR]

`--server-pythonpath DIR` runs the proxy server from another source tree (a checkout of this repository,
e.g. from `git worktree add` or `git archive`), to measure an older version against the same clients in the
same way; `--baseline-tree DIR` runs a server from such a tree beside ours and the real one, and proxy
creation + deletion takes it in turn with them (before and after a change, in the same run); `--server-loop`
picks the server's event loop (SAGAPROOF_EVENT_LOOP). Besides the times, it prints the proxy
process's own CPU time per MB and per round trip, which other load on the machine changes little.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import selectors
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import nats
import nats.errors
import requests
from natsload import core_flow  # benchmarks/natsload.py (this script's folder is first on sys.path)
from sagaproof.harness.env.ports import free_port  # outside the ephemeral range, locked against other runs

SERVER = r"""
import asyncio
BLOCK = bytes(256 * 1024)
async def h(r, w):
    try:
        mode = await r.readexactly(1)
        if mode == b"E":
            while d := await r.read(65536):
                w.write(d); await w.drain()
        elif mode == b"U":
            n = int.from_bytes(await r.readexactly(8), "big")
            while n > 0:
                d = await r.read(min(n, 1 << 20))
                if not d:
                    break
                n -= len(d)
            w.write(b"k"); await w.drain()
            await r.read(1)
        elif mode == b"D":
            n = int.from_bytes(await r.readexactly(8), "big")
            while n > 0:
                w.write(BLOCK[: min(n, len(BLOCK))]); n -= min(n, len(BLOCK))
                await w.drain()
            await r.read(1)
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    w.close()
async def main():
    s = await asyncio.start_server(h, "127.0.0.1", 0, backlog=4096)
    print(s.sockets[0].getsockname()[1], flush=True)
    await s.serve_forever()
asyncio.run(main())
"""

BUSY = "while True:\n    pass\n"

def spawn(
    args: list[str], pattern: str, timeout: float = 15.0, env: dict[str, str] | None = None, cwd: str | None = None
) -> tuple[subprocess.Popen, re.Match]:
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=cwd)
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        seen.append(line)
        found = re.search(pattern, line)
        if found:
            # keep reading its output so it can never block on a full pipe
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()  # type: ignore[union-attr]
            return proc, found
    proc.kill()
    proc.wait(5)
    raise RuntimeError(f"{args[0]} did not start: {''.join(seen[-5:])}")


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def addr_of(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def _connect(addr: tuple[str, int], mode: bytes) -> socket.socket:
    sock = socket.create_connection(addr, timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(mode)
    return sock


def tcp_upload(addr: tuple[str, int], total: int) -> float:
    """MB/s of `total` bytes sent to the sink, until it acknowledges them all."""
    sock = _connect(addr, b"U" + total.to_bytes(8, "big"))
    block = memoryview(os.urandom(256 * 1024))
    t0 = time.perf_counter()
    sent = 0
    while sent < total:
        sent += sock.send(block[: min(len(block), total - sent)])
    if sock.recv(1) != b"k":
        raise RuntimeError("sink did not acknowledge")
    elapsed = time.perf_counter() - t0
    sock.close()
    return total / elapsed / 1e6


def tcp_download(addr: tuple[str, int], total: int) -> float:
    """MB/s of `total` bytes read from the source."""
    sock = _connect(addr, b"D" + total.to_bytes(8, "big"))
    buf = bytearray(1 << 20)
    t0 = time.perf_counter()
    got = 0
    while got < total:
        n = sock.recv_into(buf)
        if not n:
            raise RuntimeError(f"source closed early after {got} bytes")
        got += n
    elapsed = time.perf_counter() - t0
    sock.close()
    return total / elapsed / 1e6


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (from /proc; 10 ms resolution)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident memory of a process, MB (VmRSS from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


TCPI_TOTAL_RETRANS = 100  # byte offset of tcpi_total_retrans in Linux's struct tcp_info


def connect_burst(addr: tuple[str, int], n: int, bound: float = 60.0) -> tuple[float, int, int]:
    """Open `n` connections at once (every SYN sent before any is waited for), then send a byte on each
    and read its echo. Returns (seconds until all echoed, SYNs dropped and sent again, failed connects)."""
    socks: list[socket.socket] = []
    sel = selectors.DefaultSelector()
    retransmitted = failed = 0
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.connect_ex(addr)
            sel.register(sock, selectors.EVENT_WRITE)
        pending = n
        good: list[socket.socket] = []
        deadline = time.monotonic() + bound
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1.0):
                sock = key.fileobj  # type: ignore[assignment]
                sel.unregister(sock)
                pending -= 1
                if sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                    failed += 1
                    continue
                info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
                retransmitted += struct.unpack_from("I", info, TCPI_TOTAL_RETRANS)[0] > 0
                sock.setblocking(True)
                sock.settimeout(bound)
                good.append(sock)
        failed += pending
        for sock in good:
            try:
                sock.sendall(b"Ex")  # echo mode, then one byte
                failed += sock.recv(1) != b"x"
            except OSError:
                failed += 1
        return time.perf_counter() - t0, retransmitted, failed
    finally:
        sel.close()
        for sock in socks:
            sock.close()


def tcp_pings(addrs: dict[str, tuple[str, int]], count: int) -> dict[str, list[float]]:
    """1-byte round trips to each address in turn, `count` each, so that every one sees the same moments."""
    socks = {label: _connect(addr, b"E") for label, addr in addrs.items()}
    out: dict[str, list[float]] = {label: [] for label in addrs}
    try:
        for sock in socks.values():
            sock.sendall(b"w")
            sock.recv(1)
        for _ in range(count):
            for label, sock in socks.items():
                t0 = time.perf_counter()
                sock.sendall(b"x")
                if not sock.recv(1):
                    raise RuntimeError("echo closed")
                out[label].append(time.perf_counter() - t0)
    finally:
        for sock in socks.values():
            sock.close()
    return out


async def nats_figures(a_url: str, b_url: str, requests_n: int, msgs_n: int) -> tuple[list[float], float]:
    responder = await nats.connect(b_url)
    requester = await nats.connect(a_url)

    async def reply(msg: Any) -> None:
        await msg.respond(msg.data)

    await responder.subscribe("bench.rpc", cb=reply)
    await responder.flush()
    for attempt in range(200):  # until the responder's subscription is seen through both links
        try:
            await requester.request("bench.rpc", b"w", timeout=5)
            break
        except nats.errors.NoRespondersError:
            if attempt == 199:
                raise
            await asyncio.sleep(0.01)
    for _ in range(50):  # warm up
        await requester.request("bench.rpc", b"w", timeout=5)
    rtts = []
    for _ in range(requests_n):
        t0 = time.perf_counter()
        await requester.request("bench.rpc", b"ping", timeout=5)
        rtts.append(time.perf_counter() - t0)
    await requester.close()
    await responder.close()

    rate, got = await core_flow(a_url, b_url, msgs_n)
    if got < msgs_n:  # messages lost (a slow consumer cut by the server): no rate, say so
        print(f"  pub/sub: only {got} of {msgs_n} messages arrived", file=sys.stderr, flush=True)
    return rtts, rate


# ------------------------------------------------------------------------------------------ recorder
def recorder_figures(n: int, rounds: int) -> dict[str, Any]:
    """The recorder against a bare consumer: benchmarks/recorder_throughput.py (its own embedded NATS, as
    the engine starts it), medians of `rounds` alternating rounds."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import recorder_throughput

    results = recorder_throughput.run(n, rounds)
    lines, ok = recorder_throughput.summary(results, n)
    return {"lines": lines, "ok": ok}


# ------------------------------------------------------------------------------------------ real Toxiproxy
REAL_ENV = "SAGAPROOF_REAL_TOXIPROXY"


def fail(message: str) -> NoReturn:
    """A mistake in what the benchmark was given: one sentence, exit code 2."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def start_real(path: str) -> tuple[subprocess.Popen, str]:
    """The real toxiproxy-server on a loopback port; its API URL once /version answers."""
    if not os.access(path, os.X_OK):
        fail(f"{path} is not an executable toxiproxy-server; build it with "
             "../shared/tools/build_real_toxiproxy.sh or leave out --real-toxiproxy.")
    port = free_port()
    proc = subprocess.Popen([path, "-host", "127.0.0.1", "-port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if requests.get(url + "/version", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.05)
    proc.kill()
    proc.wait(5)
    fail(f"the real Toxiproxy at {path} did not answer on {url}; check that it runs ({path} -version).")


def importable_tree(tree: str, scratch: str) -> str:
    """A directory to put first on PYTHONPATH so that `sagaproof` and its floors come from `tree`.

    A checkout has `sagaproof/` beside `chaos/`, `harness/` and `contracts/` (the install maps them into the
    package), so a checkout's own directory would take only `sagaproof/` from it and the floors from the
    installed tree; this builds `scratch/sagaproof` with the floors linked in.
    """
    root = Path(tree).resolve()
    if (root / "sagaproof" / "chaos").is_dir() or not (root / "chaos").is_dir():
        return str(root)
    package = Path(scratch) / "sagaproof"
    package.mkdir(parents=True)
    for item in (root / "sagaproof").iterdir():
        (package / item.name).symlink_to(item)
    for floor in ("chaos", "harness", "contracts"):
        (package / floor).symlink_to(root / floor)
    return scratch


def churn(http: requests.Session, api: str, upstream: str, names: range) -> list[float]:
    """Seconds per proxy created and deleted through the API, one pair after the other."""
    out = []
    for i in names:
        t0 = time.perf_counter()
        r = http.post(f"{api}/proxies", json={"name": f"churn{i}", "listen": "127.0.0.1:0", "upstream": upstream},
                      timeout=10)
        r.raise_for_status()
        http.delete(f"{api}/proxies/churn{i}", timeout=10).raise_for_status()
        out.append(time.perf_counter() - t0)
    return out


# ------------------------------------------------------------------------------------------ bench
class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        quick = args.quick
        self.bulk = (32 if quick else 128) * 1024 * 1024
        self.bulk_rounds = 2 if quick else 3
        self.ping_n = 3000 if quick else 10000
        self.req_n = 500 if quick else 2000
        self.msgs_n = 5000 if quick else 30000
        self.bw_seconds = 1.0 if quick else 2.0
        self.rec_n = 5000 if quick else 20000
        self.rec_rounds = 2 if quick else 3
        self.churn_n = 100 if quick else 300
        self.burst_n = 1000
        self.burst_rounds = 1 if quick else 2
        self.sections = {x.strip() for x in args.sections.split(",") if x.strip()}
        self.real_path = args.real_toxiproxy or os.environ.get(REAL_ENV, "")
        self.real_api = ""
        self.rss: dict[str, float] = {}
        self.procs: list[subprocess.Popen] = []
        self.tmp = tempfile.TemporaryDirectory()
        self.http = requests.Session()

    def start(self) -> None:
        nats_bin = str(Path(sys.executable).parent / "nats-server")
        p, m = spawn(
            [nats_bin, "-a", "127.0.0.1", "-p", "-1", "-js", "-sd", self.tmp.name],
            r"Listening for client connections on 127\.0\.0\.1:(\d+)",
        )
        self.procs.append(p)
        self.nats_addr = f"127.0.0.1:{m.group(1)}"
        p, m = spawn([sys.executable, "-c", SERVER], r"^(\d+)$")
        self.procs.append(p)
        self.tcp_addr = f"127.0.0.1:{m.group(1)}"
        env = dict(os.environ)
        if self.args.server_loop:
            env["SAGAPROOF_EVENT_LOOP"] = self.args.server_loop
        self.server_pid, self.api = self.start_ours(env, self.args.server_pythonpath, "tree")
        time.sleep(0.2)  # let it settle before its memory is read
        self.rss["ours"] = rss_mb(self.server_pid)
        if self.args.baseline_tree and "real" in self.sections:
            self.base_pid, self.base_api = self.start_ours(env, self.args.baseline_tree, "baseline")
        if self.real_path and "real" in self.sections:
            p, self.real_api = start_real(self.real_path)
            self.procs.append(p)
            self.real_pid = p.pid
            time.sleep(0.2)
            self.rss["real"] = rss_mb(self.real_pid)
        self.p_tcp = self.make("tcp", self.tcp_addr)
        self.p_tcp_lat = self.make("tcp_lat", self.tcp_addr)
        for stream in ("upstream", "downstream"):
            self.toxic("tcp_lat", "latency", stream, latency=0)
        if self.real_api:
            self.r_tcp = self.make("tcp", self.tcp_addr, self.real_api)
            self.r_tcp_lat = self.make("tcp_lat", self.tcp_addr, self.real_api)
            for stream in ("upstream", "downstream"):
                self.toxic("tcp_lat", "latency", stream, api=self.real_api, latency=0)
        self.p_a = self.make("svc_a", self.nats_addr)
        self.p_b = self.make("svc_b", self.nats_addr)
        self.p_bw = self.make("bw", self.tcp_addr)

    def start_ours(self, env: dict[str, str], tree: str, label: str) -> tuple[int, str]:
        """Our server from `tree` (this one when empty): its pid and API URL."""
        env = dict(env)
        cwd = None
        if tree:  # run from there, so that its `sagaproof` comes first on sys.path
            if not Path(tree, "chaos").is_dir() and not Path(tree, "sagaproof", "chaos").is_dir():
                fail(f"{tree} is not a checkout of sagaproof (no chaos/ in it); give a tree made with "
                     "`git worktree add` or `git archive`.")
            cwd = importable_tree(tree, os.path.join(self.tmp.name, label))
            env["PYTHONPATH"] = cwd + os.pathsep + env.get("PYTHONPATH", "")
        code = "import sys; from sagaproof.chaos import toxiproxy as t; sys.exit(t.main(sys.argv[1:]))"
        p, m = spawn([sys.executable, "-c", code, "--port", "0"], r"listening on (http://\S+)", env=env, cwd=cwd)
        self.procs.append(p)
        return p.pid, m.group(1)

    def stop(self) -> None:
        for p in reversed(self.procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        self.tmp.cleanup()

    def make(self, name: str, upstream: str, api: str = "") -> str:
        r = self.http.post(
            f"{api or self.api}/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": upstream}, timeout=10
        )
        r.raise_for_status()
        return str(r.json()["listen"])

    def toxic(self, proxy: str, type_: str, stream: str, api: str = "", **attrs: Any) -> None:
        r = self.http.post(
            f"{api or self.api}/proxies/{proxy}/toxics",
            json={"type": type_, "stream": stream, "attributes": attrs},
            timeout=10,
        )
        r.raise_for_status()

    def set_toxics(self, kind: str | None) -> None:
        """The NATS proxies' toxics for one configuration (the TCP proxies keep theirs)."""
        for proxy in ("svc_a", "svc_b"):
            for toxic in self.http.get(f"{self.api}/proxies/{proxy}/toxics", timeout=10).json():
                self.http.delete(f"{self.api}/proxies/{proxy}/toxics/{toxic['name']}", timeout=10).raise_for_status()
            for stream in ("upstream", "downstream"):
                if kind == "latency":
                    self.toxic(proxy, "latency", stream, latency=0)
                elif kind == "nats":
                    self.toxic(proxy, "nats_drop", stream, subject="never.matches", probability=1.0)

    def real_figures(self) -> dict[str, Any]:
        """Proxy creation + deletion, 1,000 connections at once, against the real server, alternating."""
        apis = {"ours": self.api, "real": self.real_api}
        pids = {"ours": self.server_pid, "real": self.real_pid}
        if self.args.baseline_tree:
            apis["base"], pids["base"] = self.base_api, self.base_pid
        out: dict[str, Any] = {"churn": {who: [] for who in apis}, "burst": {"ours": [], "real": []},
                               "churn_cpu": {who: 0.0 for who in apis}}
        print("  measuring proxy creation and deletion ...", file=sys.stderr, flush=True)
        block = 10
        for start in range(0, self.churn_n, block):
            for who, api in apis.items():
                before = cpu_seconds(pids[who])
                out["churn"][who] += churn(self.http, api, self.tcp_addr, range(start, start + block))
                out["churn_cpu"][who] += cpu_seconds(pids[who]) - before
        print(f"  measuring {self.burst_n} connections at once ...", file=sys.stderr, flush=True)
        for _ in range(self.burst_rounds):
            for who, addr in (("ours", self.p_tcp), ("real", self.r_tcp)):
                out["burst"][who].append(connect_burst(addr_of(addr), self.burst_n))
                time.sleep(0.5)  # let the closed connections drain before the next burst
        return out

    def phase(self) -> dict[str, Any]:
        """One table. TCP figures are taken interleaved (each round and each ping goes direct, through
        the proxy, and through the proxy with latency toxics, in turn), so that all three see the same
        machine; NATS figures one configuration after the other."""
        out: dict[str, Any] = {"rows": [], "tcp": {}}
        tcp = {"direct": self.tcp_addr, "proxy": self.p_tcp, "proxy+latency": self.p_tcp_lat}
        if self.real_api:
            tcp.update({"real": self.r_tcp, "real+latency": self.r_tcp_lat})
        pid_of = {label: self.real_pid if label.startswith("real") else self.server_pid for label in tcp}
        figures: dict[str, dict[str, Any]] = {label: {"label": label, "up": [], "down": []} for label in tcp}
        if "tcp" in self.sections or self.real_api:
            print("  measuring TCP bulk ...", file=sys.stderr, flush=True)
            cpu: dict[str, float] = {label: 0.0 for label in tcp}
            for _ in range(self.bulk_rounds):
                for label, addr in tcp.items():
                    before = cpu_seconds(pid_of[label])
                    figures[label]["up"].append(tcp_upload(addr_of(addr), self.bulk))
                    figures[label]["down"].append(tcp_download(addr_of(addr), self.bulk))
                    cpu[label] += cpu_seconds(pid_of[label]) - before
            print("  measuring TCP ping ...", file=sys.stderr, flush=True)
            pings = tcp_pings({label: addr_of(addr) for label, addr in tcp.items()}, self.ping_n)
            # The proxy process's own CPU time per MB and per round trip: a figure that other load on the
            # machine does not change much (it is what the proxy costs, not how long it waited for a core).
            out["cpu"] = {}
            for label in tcp:
                if label == "direct":
                    continue
                before = cpu_seconds(pid_of[label])
                tcp_pings({label: addr_of(tcp[label])}, self.ping_n)
                per_ping = (cpu_seconds(pid_of[label]) - before) / self.ping_n
                per_mb = cpu[label] / (2 * self.bulk * self.bulk_rounds / 1e6)
                out["cpu"][label] = (per_mb, per_ping)
            for label, row in figures.items():
                row["up"], row["down"] = statistics.median(row["up"]), statistics.median(row["down"])
                row["ping50"], row["ping99"] = statistics.median(pings[label]), pct(pings[label], 0.99)
                row["ping90"] = pct(pings[label], 0.90)
                row["over1ms"] = sum(1 for x in pings[label] if x > 1e-3)
                out["tcp"][label] = row
        if self.real_api:
            out["real"] = self.real_figures()
        if not self.sections & {"nats", "bandwidth", "recorder"}:
            return out
        figures["proxy+nats_drop"] = {"label": "proxy+nats_drop"}
        configs = [
            ("direct", None, self.nats_addr, self.nats_addr),
            ("proxy", None, self.p_a, self.p_b),
            ("proxy+latency", "latency", self.p_a, self.p_b),
            ("proxy+nats_drop", "nats", self.p_a, self.p_b),
        ]
        for label, toxic, a_addr, b_addr in configs if "nats" in self.sections else []:
            self.set_toxics(toxic)
            print(f"  measuring NATS {label} ...", file=sys.stderr, flush=True)
            row = figures[label]
            rtts, rate = asyncio.run(nats_figures(f"nats://{a_addr}", f"nats://{b_addr}", self.req_n, self.msgs_n))
            row["rr50"], row["rr99"], row["msgs"] = statistics.median(rtts), pct(rtts, 0.99), rate
            out["rows"].append(row)
        self.set_toxics(None)
        out["bandwidth"] = []
        for mbps in (5, 20, 50) if "bandwidth" in self.sections else ():
            print(f"  measuring bandwidth {mbps} MB/s ...", file=sys.stderr, flush=True)
            self.http.delete(f"{self.api}/proxies/bw/toxics/bandwidth_downstream", timeout=10)
            self.toxic("bw", "bandwidth", "downstream", rate=mbps * 1000)
            total = int(mbps * 1e6 * self.bw_seconds)
            got = tcp_download(addr_of(self.p_bw), total)
            out["bandwidth"].append((mbps, got))
        self.http.delete(f"{self.api}/proxies/bw/toxics/bandwidth_downstream", timeout=10)
        if "recorder" in self.sections:
            print("  measuring recorder ...", file=sys.stderr, flush=True)
            out["recorder"] = recorder_figures(self.rec_n, self.rec_rounds)
        return out


def mark(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def ratio(a: float, b: float) -> float:
    return a / b if b else (float("inf") if a else 1.0)


def report(title: str, res: dict[str, Any], busy: bool, args: argparse.Namespace, bench: Bench) -> None:
    print()
    print(f"== {title} ==")
    tcp = res["tcp"]
    if tcp:
        base = tcp["direct"]
        print(f"{'TCP config':<16} {'up MB/s':>8} {'x':>5} {'down MB/s':>9} {'x':>5} {'ping p50':>9} {'p90':>6} "
              f"{'p99 us':>7} {'x p99':>6} {'>1ms':>6}")
        for label, r in tcp.items():
            print(f"{label:<16} {r['up']:8.0f} {r['up'] / base['up']:5.2f} {r['down']:9.0f} {r['down'] / base['down']:5.2f} "
                  f"{r['ping50'] * 1e6:9.0f} {r['ping90'] * 1e6:6.0f} {r['ping99'] * 1e6:7.0f} "
                  f"{r['ping99'] / base['ping99']:6.2f} {r['over1ms'] / bench.ping_n:6.1%}")
        print("proxy process CPU: " + "; ".join(
            f"{label} {per_mb * 1e6:.0f} us per MB, {per_ping * 1e6:.0f} us per 1-byte round trip"
            for label, (per_mb, per_ping) in res["cpu"].items()
        ))
    rows = {r["label"]: r for r in res["rows"]}
    if rows:
        nbase = rows["direct"]
        print(f"{'NATS config':<16} {'rr p50 us':>9} {'+us':>5} {'rr p99':>7} {'msgs/s':>7} {'x':>5}")
        for r in res["rows"]:
            print(f"{r['label']:<16} {r['rr50'] * 1e6:9.0f} {(r['rr50'] - nbase['rr50']) * 1e6:5.0f} "
                  f"{r['rr99'] * 1e6:7.0f} {r['msgs']:7.0f} {r['msgs'] / nbase['msgs']:5.2f}")
    if res.get("bandwidth"):
        print("bandwidth toxic (downstream, on from the start): " + ", ".join(
            f"{asked} MB/s -> {got:.2f} ({got / asked:.3f}x {mark(got / asked >= 0.95)})"
            for asked, got in res["bandwidth"]
        ))
    if "recorder" in res:
        print("recorder + live validation vs bare nats-py consumer (benchmarks/recorder_throughput.py):")
        for line in res["recorder"]["lines"]:
            print("  " + line)
    if rows and not busy:
        added = (rows["proxy"]["rr50"] - rows["direct"]["rr50"]) * 1e6
        print(f"target (issue 13): NATS request/reply added p50 {added:.0f} us <= 250 us: {mark(added <= 250)}")
    if tcp and busy:
        px, base = tcp["proxy"], tcp["direct"]
        r99, up, down = px["ping99"] / base["ping99"], px["up"] / base["up"], px["down"] / base["down"]
        print(f"target (issue 13): ping p99 {r99:.2f}x direct <= 4x: {mark(r99 <= 4)}; bulk upload {up:.2f}x >= 0.35x: "
              f"{mark(up >= 0.35)}; bulk download {down:.2f}x >= 0.15x: {mark(down >= 0.15)}")
    if "real" in res:
        report_real(res, bench)
    elif "real" in bench.sections:
        print(f"no real Toxiproxy given (--real-toxiproxy PATH or {REAL_ENV}): figures are against going direct only")
    counts = []
    if tcp:
        counts.append(f"TCP: {bench.bulk // (1024 * 1024)} MiB each way, median of {bench.bulk_rounds}; "
                      f"{bench.ping_n} pings")
    if rows:
        counts.append(f"NATS: {bench.req_n} requests, {bench.msgs_n} messages, request/reply crosses the proxy 4 times")
    if "recorder" in res:
        counts.append(f"recorder: {bench.rec_n} stored messages, median of {bench.rec_rounds}")
    counts.append(f"load average {os.getloadavg()[0]:.2f} at the end of the phase")
    print("(" + "; ".join(counts) + ")")


def report_real(res: dict[str, Any], bench: Bench) -> None:
    tcp, real = res["tcp"], res["real"]
    print(f"-- ours against the real Toxiproxy ({bench.real_path}), same run --")
    print(f"{'':<40} {'ours':>9} {'real':>9} {'ours/real':>9}")

    def line(what: str, ours: float, theirs: float, fmt: str = "9.0f") -> float:
        r = ratio(ours, theirs)
        print(f"{what:<40} {ours:{fmt}} {theirs:{fmt}} {r:9.2f}")
        return r

    checks: list[str] = []
    for kind in ("", "+latency"):
        o, r = tcp["proxy" + kind], tcp["real" + kind]
        name = "no toxics" if not kind else "0 ms latency toxic each way"
        print(f"TCP, {name}:")
        line("  bulk upload MB/s", o["up"], r["up"])
        line("  bulk download MB/s", o["down"], r["down"])
        line("  ping p50 us", o["ping50"] * 1e6, r["ping50"] * 1e6)
        line("  ping p90 us", o["ping90"] * 1e6, r["ping90"] * 1e6)
        p99 = line("  ping p99 us", o["ping99"] * 1e6, r["ping99"] * 1e6)
        over = line(f"  pings over 1 ms (of {bench.ping_n})", o["over1ms"], r["over1ms"])
        cpu_o, cpu_r = res["cpu"]["proxy" + kind], res["cpu"]["real" + kind]
        line("  server CPU us per MB", cpu_o[0] * 1e6, cpu_r[0] * 1e6)
        line("  server CPU us per round trip", cpu_o[1] * 1e6, cpu_r[1] * 1e6, "9.1f")
        checks.append(f"ping p99{kind} {p99:.2f}x <= 1.5x: {mark(p99 <= 1.5)}")
        checks.append(f"over 1 ms{kind} {over:.2f}x <= 1.5x: {mark(over <= 1.5)}")
    co, cr = real["churn"]["ours"], real["churn"]["real"]
    print(f"proxy created + deleted ({len(co)} each, alternating blocks of 10):")
    churn_median = line("  ms per pair, median", statistics.median(co) * 1e3, statistics.median(cr) * 1e3, "9.2f")
    line("  ms per pair, mean", statistics.mean(co) * 1e3, statistics.mean(cr) * 1e3, "9.2f")
    cpu = real["churn_cpu"]
    line("  server CPU ms per pair", cpu["ours"] / len(co) * 1e3, cpu["real"] / len(cr) * 1e3, "9.2f")
    checks.append(f"create+delete median {churn_median:.2f}x <= 1x: {mark(churn_median <= 1.0)}")
    if "base" in real["churn"]:
        cb = real["churn"]["base"]
        print(f"  the baseline tree ({bench.args.baseline_tree}), same blocks, taken in turn with the two above:")
        line("  ms per pair, median: baseline / real", statistics.median(cb) * 1e3, statistics.median(cr) * 1e3, "9.2f")
        line("  ms per pair, median: ours / baseline", statistics.median(co) * 1e3, statistics.median(cb) * 1e3, "9.2f")
        line("  server CPU ms per pair: ours / baseline", cpu["ours"] / len(co) * 1e3, cpu["base"] / len(cb) * 1e3,
             "9.2f")
    bo, br = real["burst"]["ours"], real["burst"]["real"]
    print(f"{bench.burst_n} connections opened at once, then a byte echoed on each ({len(bo)} rounds each):")
    line("  seconds until all through, median", statistics.median(b[0] for b in bo),
         statistics.median(b[0] for b in br), "9.3f")
    resent = sum(b[1] for b in bo)
    line("  SYNs dropped and sent again, total", resent, sum(b[1] for b in br))
    failed = sum(b[2] for b in bo)
    line("  connections failed, total", failed, sum(b[2] for b in br))
    checks.append(f"1000 at once: {resent} resent, {failed} failed: {mark(resent == 0 and failed == 0)}")
    line("memory at start, MB (VmRSS)", bench.rss["ours"], bench.rss["real"], "9.1f")
    print("targets (issue 24): " + "; ".join(checks))


@contextmanager
def busy_core() -> Iterator[subprocess.Popen]:
    proc = subprocess.Popen([sys.executable, "-c", BUSY])
    try:
        time.sleep(0.5)  # let the scheduler settle it on a core
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller counts (for smoke runs)")
    parser.add_argument("--phases", default="idle,busy", help="which phases to run: idle, busy or both")
    parser.add_argument("--server-pythonpath", default="", help="run the proxy server from this source tree")
    parser.add_argument("--real-toxiproxy", default="", metavar="PATH",
                        help=f"the real toxiproxy-server binary to compare with (default: ${REAL_ENV})")
    parser.add_argument("--sections", default="tcp,nats,bandwidth,recorder,real",
                        help="what to measure: tcp, nats, bandwidth, recorder, real (comma-separated)")
    parser.add_argument("--baseline-tree", default="", metavar="DIR",
                        help="also run our server from this checkout (an older version) in the creation + deletion "
                             "figures, beside ours and the real one")
    parser.add_argument(
        "--server-loop", choices=["uvloop", "asyncio"], default="", help="the server's event loop (default: its own)"
    )
    args = parser.parse_args(argv)
    phases = [p.strip() for p in args.phases.split(",") if p.strip()]
    bench = Bench(args)
    try:
        bench.start()
        server = args.server_pythonpath or "this tree"
        if bench.real_api:
            print(f"real Toxiproxy: {bench.real_path} (run beside ours, same proxies, same moments)", flush=True)
        elif "real" in bench.sections:
            print(f"no real Toxiproxy given (--real-toxiproxy PATH or {REAL_ENV}): "
                  "measuring against going direct only", flush=True)
        print(
            f"server: {server}, loop {args.server_loop or 'default'}; machine: {os.cpu_count()} cores, "
            f"load average {os.getloadavg()[0]:.2f} at start",
            flush=True,
        )
        for phase in phases:
            print(f"phase {phase} ...", file=sys.stderr, flush=True)
            if phase == "busy":
                with busy_core():
                    res = bench.phase()
                report("with one core kept busy by another process", res, True, args, bench)
            else:
                res = bench.phase()
                report("idle machine", res, False, args, bench)
        print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)
    finally:
        bench.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
