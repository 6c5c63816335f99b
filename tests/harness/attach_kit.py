"""A "deployed" shop for attach-mode tests, started by the test itself and not by the harness: a nats-server (or a
3-node cluster with TLS and an nkey per service), a Toxiproxy-compatible server (`sagaproof toxiproxy`) with one
proxy per service's NATS link, the shop's four services (started through tests/fixtures/attach/svcctl.py, which
is also their fault commands), and the system file that attaches sagaproof to all of it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from sagaproof.harness.env.nats_server import find_nats_server, free_port

from tests.conftest import ROOT, SAGAPROOF, SHOP, copy_example

SVCCTL = ROOT / "tests" / "fixtures" / "attach" / "svcctl.py"
SERVICES = ("order", "payment", "inventory", "shipping")


def wait_until(what: str, fn, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if fn():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g}s")
        time.sleep(0.05)


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return 200 <= resp.status < 300
    except (urllib.error.URLError, OSError):
        return False


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class Tls:
    """Certificates made with openssl: a CA, a server certificate for 127.0.0.1, a client certificate."""

    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path

    @classmethod
    def make(cls, d: Path) -> Tls:
        d.mkdir(parents=True, exist_ok=True)

        def ossl(*args: str) -> None:
            subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True, timeout=60)

        ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=sagaproof test CA")
        for who, ext in (("server", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth"),
                         ("client", "extendedKeyUsage=clientAuth")):
            (d / f"{who}.ext").write_text(ext + "\n")
            ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{who}-key.pem", "-out", f"{who}.csr",
                 "-subj", f"/CN=sagaproof {who}")
            ossl("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.pem", "-CAkey", "ca-key.pem", "-CAcreateserial",
                 "-out", f"{who}.pem", "-days", "2", "-extfile", f"{who}.ext")
        return cls(d / "ca.pem", d / "server.pem", d / "server-key.pem", d / "client.pem", d / "client-key.pem")


def make_nkey(path: Path) -> str:
    """Write a new user nkey seed to `path`; return its public key (U...)."""
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    path.write_bytes(seed + b"\n")
    return nkeys.from_seed(bytearray(seed)).public_key.decode()


@dataclass
class Nats:
    """nats-server node(s) the test runs: client ports, optional TLS and nkey users."""

    root: Path
    size: int = 1
    tls: Tls | None = None
    nkeys: dict[str, Path] = field(default_factory=dict)  # who -> seed file (users of the servers)
    auth_config: str = ""  # e.g. Operator.server_config (JWT auth) instead of nkey users
    ports: list[int] = field(default_factory=list)
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start(self) -> Nats:
        binary = find_nats_server()
        self.ports = [free_port() for _ in range(self.size)]
        http = [free_port() for _ in range(self.size)]
        routes = [free_port() for _ in range(self.size)] if self.size > 1 else []
        users = {who: make_nkey(seed) for who, seed in self.nkeys.items()}
        for i in range(self.size):
            d = self.root / f"nats-{i}"
            d.mkdir(parents=True, exist_ok=True)
            lines = [f'server_name: "attach-n{i}"', f"listen: 127.0.0.1:{self.ports[i]}", f"http: 127.0.0.1:{http[i]}",
                     f"jetstream {{ store_dir: {json.dumps(str(d / 'store'))} }}"]
            if self.auth_config:
                lines.append(self.auth_config)
            if users:
                lines.append("authorization { users = [ " +
                             ", ".join(f"{{ nkey: {pub} }}" for pub in users.values()) + " ] }")
            if self.tls is not None:
                lines.append(f"tls {{ cert_file: {json.dumps(str(self.tls.server_cert))}, key_file: "
                             f"{json.dumps(str(self.tls.server_key))}, ca_file: {json.dumps(str(self.tls.ca))}, "
                             f"verify: true, timeout: 5 }}")
            if routes:
                peers = ", ".join(f"nats-route://127.0.0.1:{p}" for j, p in enumerate(routes) if j != i)
                lines.append(f"cluster {{ name: attach, listen: 127.0.0.1:{routes[i]}, routes: [ {peers} ] }}")
            (d / "nats.conf").write_text("\n".join(lines) + "\n")
            with open(d / "nats.log", "ab") as log:
                self.procs.append(subprocess.Popen([binary, "-c", str(d / "nats.conf")], stdout=log,
                                                   stderr=subprocess.STDOUT, start_new_session=True))
        for i in range(self.size):
            wait_until(f"nats node {i} healthy", lambda i=i: http_ok(f"http://127.0.0.1:{http[i]}/healthz"))
        return self

    @property
    def scheme(self) -> str:
        return "tls" if self.tls is not None else "nats"

    def url(self, i: int = 0) -> str:
        return f"{self.scheme}://127.0.0.1:{self.ports[i]}"

    def stop(self) -> None:
        for p in self.procs:
            _kill_group(p.pid)
            p.wait()


@dataclass
class Toxiproxy:
    """`sagaproof toxiproxy` as a server of its own, with one proxy per service toward NATS."""

    port: int = 0
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log: Path) -> Toxiproxy:
        self.port = free_port()
        with open(log, "ab") as out:
            self.proc = subprocess.Popen([*SAGAPROOF, "toxiproxy", "--port", str(self.port)], stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        wait_until("the toxiproxy API", lambda: http_ok(f"{self.url}/version"))
        return self

    def create(self, name: str, upstream: str) -> int:
        body = json.dumps({"name": name, "listen": "127.0.0.1:0", "upstream": upstream, "enabled": True}).encode()
        req = urllib.request.Request(f"{self.url}/proxies", data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return int(json.loads(resp.read())["listen"].rsplit(":", 1)[1])

    def stop(self) -> None:
        if self.proc is not None:
            _kill_group(self.proc.pid)
            self.proc.wait()


@dataclass
class DeployedShop:
    """The shop's four services, each reaching NATS through its own proxy (or directly), started by svcctl."""

    root: Path
    nats: Nats
    toxiproxy: Toxiproxy | None
    bug: str | None = None
    ports: dict[str, int] = field(default_factory=dict)
    proxy_of: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return self.root / "state"

    def start(self, extra_env: dict[str, dict[str, str]] | None = None) -> DeployedShop:
        self.state.mkdir(parents=True, exist_ok=True)
        for i, name in enumerate(SERVICES):
            upstream = f"127.0.0.1:{self.nats.ports[i % len(self.nats.ports)]}"
            if self.toxiproxy is not None:
                self.proxy_of[name] = f"{name}-nats"
                nats_url = f"{self.nats.scheme}://127.0.0.1:{self.toxiproxy.create(self.proxy_of[name], upstream)}"
            else:
                nats_url = f"{self.nats.scheme}://{upstream}"
            self.ports[name] = free_port()
            env = dict(os.environ, SHOP_PORT=str(self.ports[name]), NATS_URL=nats_url, PYTHONUNBUFFERED="1",
                       DATA_DIR=str(self.root / "data" / name))
            env.pop("SHOP_BUG", None)
            if self.bug:
                env["SHOP_BUG"] = self.bug
            env.update((extra_env or {}).get(name, {}))
            state = {"argv": [sys.executable, f"{name}.py"], "cwd": str(SHOP), "env": env,
                     "log": str(self.root / f"{name}.log")}
            (self.state / f"{name}.json").write_text(json.dumps(state))
            subprocess.run([sys.executable, str(SVCCTL), "start", name, str(self.state)], check=True, timeout=30,
                           capture_output=True)
        for name in SERVICES:
            wait_until(f"{name} healthy", lambda name=name: http_ok(f"http://127.0.0.1:{self.ports[name]}/health"))
        return self

    def pids(self) -> list[int]:
        out: list[int] = []
        for name in SERVICES:
            path = self.state / f"{name}.json"
            if path.is_file():
                out += json.loads(path.read_text()).get("pids", [])
        return out

    def stop(self) -> None:
        for pid in self.pids():
            _kill_group(pid)


def shop_sections() -> str:
    """The shop system file's sagas, workload and invariants (everything from [sagas.checkout] to [chaos])."""
    text = (SHOP / "sagaproof.toml").read_text()
    start = text.index("[sagas.checkout]")
    end = text.index("\n[chaos]")
    return text[start:end]


def write_attached_system(d: Path, shop: DeployedShop, *, commands: tuple[str, ...] = ("kill", "restart", "pause",
                          "resume"), proxies: bool = True, nats_access: str = "", faults: str | None = None) -> Path:
    """A copy of the shop's folder (contracts, workload, invariants) with a system file that attaches to `shop`."""
    copy_example(SHOP, d, "__pycache__", ".hypothesis", "*.toml")
    urls = ",".join(shop.nats.url(i) for i in range(len(shop.nats.ports)))
    menu = faults or '["latency", "partition", "cut", "kill", "pause", "duplicate", "drop"]'
    lines = ["[nats]", f'url = "{urls}"', nats_access, "", "[[nats.streams]]", 'name = "SHOP"',
             'subjects = ["orders.>", "payments.>", "inventory.>", "shipping.>"]', 'duplicate_window = "2m"', ""]
    for name in SERVICES:
        lines += [f"[services.{name}]", f'url = "http://127.0.0.1:{shop.ports[name]}"',
                  'ready = { http = "/health", timeout = "20s" }', f'contracts = ["contracts/{name}.yaml"]']
        if proxies and name in shop.proxy_of:
            lines.append(f'proxy = "{shop.proxy_of[name]}"')
        if commands:
            cmds = ", ".join(f'{c} = ["{{python}}", {json.dumps(str(SVCCTL))}, "{c}", "{{name}}", '
                             f'{json.dumps(str(shop.state))}]' for c in commands)
            lines.append(f"commands = {{ {cmds} }}")
        lines.append("")
    lines.append(shop_sections())
    lines += ["[chaos]", f"faults = {menu}", "intensity = 0.7"]
    if shop.toxiproxy is not None:
        lines.append(f'toxiproxy_url = "{shop.toxiproxy.url}"')
    (d / "sagaproof.toml").write_text("\n".join(lines) + "\n")
    assert not re.search(r"^command\s*=", (d / "sagaproof.toml").read_text(), re.M)
    return d


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _new_key(prefix: int) -> tuple[bytes, str]:
    import nkeys

    seed = nkeys.encode_seed(os.urandom(32), prefix)
    return seed, nkeys.from_seed(bytearray(seed)).public_key.decode()


def _jwt(issuer_seed: bytes, issuer: str, subject: str, name: str, nats: dict) -> str:
    """A NATS JWT (v2): claims signed with the issuer's nkey (ed25519), as `nsc` would write it."""
    import base64
    import hashlib

    import nkeys

    claims = {"jti": "", "iat": int(time.time()), "iss": issuer, "name": name, "sub": subject,
              "nats": {**nats, "version": 2}}
    claims["jti"] = base64.b32encode(hashlib.sha256(json.dumps(claims, sort_keys=True).encode()).digest()) \
        .decode().rstrip("=")
    signing_input = _b64(json.dumps({"typ": "JWT", "alg": "ed25519-nkey"}).encode()) + "." + \
        _b64(json.dumps(claims).encode())
    signature = nkeys.from_seed(bytearray(issuer_seed)).sign(signing_input.encode())
    return signing_input + "." + _b64(signature)


@dataclass
class Operator:
    """Decentralised (JWT) auth for a nats-server: an operator, an account with JetStream, `.creds` per user."""

    root: Path
    server_config: str = ""
    creds: dict[str, Path] = field(default_factory=dict)

    @classmethod
    def make(cls, root: Path, users: tuple[str, ...]) -> Operator:
        import nkeys

        root.mkdir(parents=True, exist_ok=True)
        op_seed, op = _new_key(nkeys.PREFIX_BYTE_OPERATOR)
        acc_seed, acc = _new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        sys_seed, sys_acc = _new_key(nkeys.PREFIX_BYTE_ACCOUNT)
        unlimited = {"subs": -1, "data": -1, "payload": -1, "imports": -1, "exports": -1, "wildcards": True,
                     "conn": -1, "leaf": -1}
        operator_jwt = _jwt(op_seed, op, op, "sagaproof-test", {"type": "operator", "system_account": sys_acc})
        account_jwt = _jwt(op_seed, op, acc, "SHOP", {"type": "account", "limits": {
            **unlimited, "mem_storage": -1, "disk_storage": -1, "streams": -1, "consumer": -1}})
        system_jwt = _jwt(op_seed, op, sys_acc, "SYS", {"type": "account", "limits": unlimited})
        out = cls(root)
        out.server_config = (f'operator: "{operator_jwt}"\nsystem_account: {sys_acc}\nresolver: MEMORY\n'
                             f'resolver_preload: {{ {acc}: "{account_jwt}", {sys_acc}: "{system_jwt}" }}')
        for who in users:
            seed, pub = _new_key(nkeys.PREFIX_BYTE_USER)
            user_jwt = _jwt(acc_seed, acc, pub, who, {"type": "user", "pub": {}, "sub": {}, "subs": -1, "data": -1,
                                                      "payload": -1})
            path = root / f"{who}.creds"
            path.write_text(f"-----BEGIN NATS USER JWT-----\n{user_jwt}\n------END NATS USER JWT------\n\n"
                            f"-----BEGIN USER NKEY SEED-----\n{seed.decode()}\n------END USER NKEY SEED------\n")
            out.creds[who] = path
        return out
