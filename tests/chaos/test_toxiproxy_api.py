"""The HTTP API over real TCP: every endpoint's status codes, bodies and headers."""

from __future__ import annotations

import json
import re
import socket
import time

import pytest
from chaos_testkit import Env, connect, recv_exactly, recv_until_closed

ERROR_CT = "text/plain; charset=utf-8"


def error_of(resp) -> tuple[int, str]:  # noqa: ANN001
    assert resp.headers["Content-Type"] == ERROR_CT
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.text.endswith("\n")
    body = json.loads(resp.text)
    assert body["status"] == resp.status_code
    return resp.status_code, body["error"]


def test_version_and_request_id(env: Env) -> None:
    resp = env.api("GET", "/version")
    assert resp.status_code == 200
    assert resp.text == '{"version": "2.12.0"}\n'
    assert resp.headers["Content-Type"] == "application/json;charset=utf-8"
    assert re.fullmatch(r"[0-9a-v]{20}", resp.headers["X-Toxiproxy-Request-Id"])
    assert (
        env.api("GET", "/version").headers["X-Toxiproxy-Request-Id"] != resp.headers["X-Toxiproxy-Request-Id"]
    )


def test_date_header_is_the_imf_fixdate_email_utils_writes() -> None:
    """The Date header is written without the email package (its memory); same text, any time."""
    import email.utils
    import random

    from sagaproof.chaos.toxiproxy._http import http_date

    rng = random.Random(7)
    for t in [0.0, 951782400.0, 4102444799.0] + [rng.uniform(0, 4.1e9) for _ in range(2000)]:
        assert http_date(t) == email.utils.formatdate(t, usegmt=True), t


def test_request_ids_are_go_xids() -> None:
    """Request ids are Go's xid (time, machine, pid, counter as 20 base32hex digits), built from a
    prefix kept for the second and the counter; checked against the whole construction."""
    import itertools
    import random

    from sagaproof.chaos.toxiproxy._api import _RequestIds

    digits = "0123456789abcdefghijklmnopqrstuv"
    ids = _RequestIds()
    rng = random.Random(11)
    for _ in range(2000):
        now, start, pid = rng.uniform(0, 4.2e9), rng.randrange(1 << 24), rng.randrange(1 << 16)
        ids._counter, ids._pid, ids._second = itertools.count(start), pid, -1
        raw = int(now).to_bytes(4, "big") + ids._machine + pid.to_bytes(2, "big") + start.to_bytes(3, "big")
        number = int.from_bytes(raw, "big") << 4
        assert ids.next(now) == "".join(digits[(number >> (5 * i)) & 31] for i in range(19, -1, -1))


def test_an_idle_api_connection_is_closed(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection that sends no request head within IDLE_TIMEOUT is closed by the server (one
    timer per connection, re-armed only when it fires); one that keeps asking is served."""
    from sagaproof.chaos.toxiproxy import _http

    monkeypatch.setattr(_http, "IDLE_TIMEOUT", 0.3)
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    sock = connect((host, int(port)))
    t0 = time.monotonic()
    for _ in range(3):  # served while it keeps asking
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\n\r\n")
        assert recv_until_header_end(sock).startswith(b"HTTP/1.1 200 OK")
    data, how = recv_until_closed(sock, limit=30)
    assert (data, how) == (b"", "eof")
    assert time.monotonic() - t0 >= 0.3 - 0.005


def recv_until_header_end(sock: socket.socket) -> bytes:
    """One whole response to GET /version: its head, then the body of Content-Length bytes."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        assert chunk, buf
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    length = int(re.search(rb"Content-Length: (\d+)", head).group(1))  # type: ignore[union-attr]
    while len(body) < length:
        body += sock.recv(4096)
    return head


def test_router_404_405_and_browser_block(env: Env) -> None:
    resp = env.api("GET", "/nope")
    assert (resp.status_code, resp.text) == (404, "404 page not found\n")
    assert "X-Toxiproxy-Request-Id" not in resp.headers
    assert env.api("GET", "/proxies/").status_code == 404
    assert env.api("GET", "/metrics").status_code == 404
    for method, path in (
        ("PUT", "/proxies"),
        ("GET", "/reset"),
        ("POST", "/version"),
        ("PUT", "/proxies/x/toxics"),
    ):
        resp = env.api(method, path)
        assert (resp.status_code, resp.content) == (405, b""), (method, path)
    resp = env.api("GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11)"})
    assert (resp.status_code, resp.text) == (403, "User agent not allowed\n")
    assert "X-Toxiproxy-Request-Id" in resp.headers
    assert env.api("GET", "/proxies", headers={"User-Agent": "curl/8"}).status_code == 200


def test_proxy_crud(env: Env) -> None:
    assert env.api("GET", "/proxies").json() == {}
    resp = env.api("POST", "/proxies", json={"name": "a", "listen": "localhost:0", "upstream": env.echo_addr})
    assert resp.status_code == 201 and resp.headers["Content-Type"] == "application/json"
    proxy = resp.json()
    assert list(proxy) == ["name", "listen", "upstream", "enabled", "Logger", "toxics"]
    assert proxy["listen"].startswith("127.0.0.1:") and not proxy["listen"].endswith(":0")
    assert proxy["enabled"] is True and proxy["toxics"] == [] and proxy["Logger"] == {}
    assert env.api("GET", "/proxies/a").json() == proxy
    assert env.api("GET", "/proxies").json() == {"a": proxy}
    assert error_of(env.api("POST", "/proxies", json={"name": "a", "upstream": "x:1"})) == (
        409,
        "proxy already exists",
    )
    assert error_of(env.api("POST", "/proxies", json={"upstream": "x:1"})) == (
        400,
        "missing required field: name",
    )
    assert error_of(env.api("POST", "/proxies", json={"name": "b"})) == (
        400,
        "missing required field: upstream",
    )
    assert error_of(env.api("POST", "/proxies", data=b"")) == (400, "bad request body: EOF")
    assert error_of(env.api("POST", "/proxies", data=b'{"name":')) == (
        400,
        "bad request body: unexpected EOF",
    )
    status, message = error_of(
        env.api("POST", "/proxies", json={"name": "b", "upstream": "x:1", "enabled": "yes"})
    )
    assert status == 400 and message.startswith("bad request body: json: cannot unmarshal string")
    # port in use: 500 with the OS message
    port = proxy["listen"].rsplit(":", 1)[1]
    status, message = error_of(
        env.api("POST", "/proxies", json={"name": "b", "listen": f"127.0.0.1:{port}", "upstream": "x:1"})
    )
    assert (status, message) == (500, f"listen tcp 127.0.0.1:{port}: bind: address already in use")
    status, message = error_of(
        env.api("POST", "/proxies", json={"name": "b", "listen": "bogus", "upstream": "x:1"})
    )
    assert (status, message) == (500, "listen tcp: address bogus: missing port in address")
    assert "b" not in env.api("GET", "/proxies").json()
    # delete
    resp = env.api("DELETE", "/proxies/a")
    assert (resp.status_code, resp.content) == (204, b"")
    assert error_of(env.api("GET", "/proxies/a")) == (404, "proxy not found")
    assert error_of(env.api("DELETE", "/proxies/a")) == (404, "proxy not found")
    with pytest.raises(ConnectionRefusedError):
        connect(("127.0.0.1", int(port)), timeout=2)


def test_disabled_create_keeps_literal_listen(env: Env) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    resp = env.api(
        "POST",
        "/proxies",
        json={"name": "d", "listen": "localhost:0", "upstream": env.echo_addr, "enabled": False},
    )
    assert resp.status_code == 201
    assert resp.json()["listen"] == "localhost:0" and resp.json()["enabled"] is False
    resp = env.api("PATCH", "/proxies/d", json={"enabled": True})
    assert resp.status_code == 200 and resp.json()["enabled"] is True
    assert resp.json()["listen"].startswith("127.0.0.1:")
    # updating listen restarts on the new address
    resp = env.api("POST", "/proxies/d", json={"listen": f"127.0.0.1:{port}"})
    assert resp.status_code == 200 and resp.json()["listen"] == f"127.0.0.1:{port}"
    sock = connect(("127.0.0.1", port))
    sock.sendall(b"ping")
    assert recv_exactly(sock, 4) == b"ping"
    sock.close()
    assert error_of(env.api("PATCH", "/proxies/zz", json={})) == (404, "proxy not found")
    assert error_of(env.api("PATCH", "/proxies/d", data=b"[1"))[0] == 400


def test_toxic_crud(env: Env) -> None:
    env.proxy("p")
    resp = env.api(
        "POST", "/proxies/p/toxics", json={"type": "latency", "attributes": {"latency": 100, "unknown": 1}}
    )
    assert resp.status_code == 200
    assert (
        resp.text
        == '{"attributes":{"latency":100,"jitter":0},"name":"latency_downstream","type":"latency","stream":"downstream","toxicity":1}'
    )
    resp = env.api(
        "POST", "/proxies/p/toxics", json={"type": "latency", "stream": "upstream", "toxicity": 0.2}
    )
    assert resp.json() == {
        "attributes": {"latency": 0, "jitter": 0},
        "name": "latency_upstream",
        "type": "latency",
        "stream": "upstream",
        "toxicity": 0.2,
    }
    assert '"toxicity":0.2}' in resp.text
    resp = env.api("POST", "/proxies/p/toxics", json={"type": "noop"})
    assert resp.json() == {
        "attributes": {},
        "name": "noop_downstream",
        "type": "noop",
        "stream": "downstream",
        "toxicity": 1,
    }
    resp = env.api("POST", "/proxies/p/toxics", json={"type": "slicer", "stream": "UPSTREAM"})
    assert resp.json()["name"] == "slicer_UPSTREAM" and resp.json()["stream"] == "UPSTREAM"
    # upstream toxics first, then downstream, each in insertion order
    names = [t["name"] for t in env.api("GET", "/proxies/p/toxics").json()]
    assert names == ["latency_upstream", "slicer_UPSTREAM", "latency_downstream", "noop_downstream"]
    assert [t["name"] for t in env.api("GET", "/proxies/p").json()["toxics"]] == names
    # errors, in the reference's order of checks
    assert error_of(env.api("POST", "/proxies/p/toxics", json={"type": "latency", "stream": "both"})) == (
        400,
        "stream was invalid, can be either upstream or downstream",
    )
    assert error_of(env.api("POST", "/proxies/p/toxics", json={"type": "latency", "stream": ""}))[0] == 400
    assert error_of(env.api("POST", "/proxies/p/toxics", json={"type": "nope"})) == (
        400,
        "invalid toxic type",
    )
    assert error_of(env.api("POST", "/proxies/p/toxics", json={})) == (400, "invalid toxic type")
    assert error_of(env.api("POST", "/proxies/p/toxics", json={"type": "latency"})) == (
        409,
        "toxic already exists",
    )
    assert error_of(
        env.api("POST", "/proxies/p/toxics", json={"type": "timeout", "name": "latency_upstream"})
    ) == (409, "toxic already exists")
    assert (
        error_of(
            env.api(
                "POST",
                "/proxies/p/toxics",
                json={"type": "latency", "name": "x", "attributes": {"latency": 1.5}},
            )
        )[0]
        == 400
    )
    assert (
        error_of(
            env.api(
                "POST",
                "/proxies/p/toxics",
                json={"type": "latency", "name": "x", "attributes": {"latency": "slow"}},
            )
        )[0]
        == 400
    )
    assert (
        error_of(
            env.api("POST", "/proxies/p/toxics", json={"type": "latency", "name": "x", "toxicity": "x"})
        )[0]
        == 400
    )
    assert error_of(env.api("POST", "/proxies/q/toxics", json={"type": "latency"})) == (
        404,
        "proxy not found",
    )
    # no range validation
    assert (
        env.api(
            "POST",
            "/proxies/p/toxics",
            json={"type": "latency", "name": "neg", "toxicity": 5, "attributes": {"latency": -5}},
        ).status_code
        == 200
    )
    # get / update merges / delete
    assert env.api("GET", "/proxies/p/toxics/latency_downstream").json()["attributes"] == {
        "latency": 100,
        "jitter": 0,
    }
    assert error_of(env.api("GET", "/proxies/p/toxics/none")) == (404, "toxic not found")
    assert error_of(env.api("GET", "/proxies/q/toxics/none")) == (404, "proxy not found")
    resp = env.api(
        "PATCH",
        "/proxies/p/toxics/latency_downstream",
        json={"attributes": {"jitter": 7}, "name": "renamed", "type": "timeout"},
    )
    assert resp.json() == {
        "attributes": {"latency": 100, "jitter": 7},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1,
    }
    resp = env.api("POST", "/proxies/p/toxics/latency_downstream", json={"toxicity": 0.5})
    assert resp.json()["toxicity"] == 0.5 and resp.json()["attributes"]["jitter"] == 7
    assert error_of(env.api("PATCH", "/proxies/p/toxics/none", json={})) == (404, "toxic not found")
    resp = env.api("DELETE", "/proxies/p/toxics/latency_downstream")
    assert (resp.status_code, resp.content) == (204, b"")
    assert error_of(env.api("DELETE", "/proxies/p/toxics/latency_downstream")) == (404, "toxic not found")


def test_populate(env: Env) -> None:
    env.proxy("keep")
    env.toxic("keep", "latency", latency=5)
    keep = env.api("GET", "/proxies/keep").json()
    body = [
        {"name": "keep", "listen": keep["listen"], "upstream": keep["upstream"], "enabled": False},
        {"name": "new", "listen": "127.0.0.1:0", "upstream": env.echo_addr},
        {"name": "off", "listen": "127.0.0.1:0", "upstream": env.echo_addr, "enabled": False},
    ]
    resp = env.api("POST", "/populate", json=body)
    assert resp.status_code == 201
    listed = resp.json()["proxies"]
    assert [p["name"] for p in listed] == ["keep", "new", "off"]
    assert listed[0]["enabled"] is True and len(listed[0]["toxics"]) == 1  # untouched
    assert listed[2]["enabled"] is False and listed[2]["listen"] == "127.0.0.1:0"
    # a changed entry is replaced and loses its toxics
    resp = env.api(
        "POST", "/populate", json=[{"name": "keep", "listen": "127.0.0.1:0", "upstream": env.echo_addr}]
    )
    assert resp.json()["proxies"][0]["toxics"] == []
    assert env.api("POST", "/populate", json=[]).text == '{"proxies":null}'
    # validation first: nothing is created
    status, message = error_of(
        env.api("POST", "/populate", json=[{"name": "x1", "upstream": "a:1"}, {"upstream": "a:1"}])
    )
    assert (status, message) == (400, "missing required field: name at proxy 2")
    assert "x1" not in env.api("GET", "/proxies").json()
    assert error_of(env.api("POST", "/populate", json={"name": "x"}))[0] == 400
    # a start failure stops processing with partial results
    resp = env.api(
        "POST",
        "/populate",
        json=[
            {"name": "y1", "listen": "127.0.0.1:0", "upstream": "a:1"},
            {"name": "y2", "listen": "bogus", "upstream": "a:1"},
            {"name": "y3", "upstream": "a:1", "listen": "127.0.0.1:0"},
        ],
    )
    assert resp.status_code == 500
    body = json.loads(resp.text)
    assert (
        body["status"] == 500
        and "missing port" in body["error"]
        and [p["name"] for p in body["proxies"]] == ["y1"]
    )
    names = env.api("GET", "/proxies").json()
    assert "y1" in names and "y2" not in names and "y3" not in names


def test_reset_enables_and_strips_toxics_keeping_connections(env: Env) -> None:
    addr = env.proxy("r")
    sock = connect(addr)
    env.toxic("r", "latency", latency=50)
    env.proxy("r2")
    assert env.api("PATCH", "/proxies/r2", json={"enabled": False}).json()["enabled"] is False
    resp = env.api("POST", "/reset")
    assert (resp.status_code, resp.content) == (204, b"")
    proxies = env.api("GET", "/proxies").json()
    assert all(p["enabled"] and p["toxics"] == [] for p in proxies.values())
    sock.sendall(b"still")
    assert recv_exactly(sock, 5) == b"still"
    sock.close()


def test_keep_alive_and_chunked_body(env: Env) -> None:
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        body = b'{"name":"c","upstream":"a:1","listen":"127.0.0.1:0"}'
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        sock.sendall(b"POST /proxies HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunked)
        sock.sendall(b"GET /version HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 201 Created\r\n")
    assert data.count(b"HTTP/1.1 ") == 2 and data.endswith(b'{"version": "2.12.0"}\n')


CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


@pytest.mark.parametrize("env", ["asyncio", "uvloop"], indirect=True)
def test_a_body_that_comes_after_its_head_in_pieces(env: Env) -> None:
    """The server has read the head (it answered 100 Continue) before any of the body is sent; the
    body then comes in two sends, a Content-Length one and a chunked one split inside its chunk."""
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    sock = connect((host, int(port)), timeout=30)
    body = b'{"name":"p","upstream":"a:1","listen":"127.0.0.1:0"}'
    sock.sendall(b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(body))
    assert recv_exactly(sock, len(CONTINUE)) == CONTINUE
    sock.sendall(body[:10])
    sock.sendall(body[10:])
    assert recv_until_header_end(sock).startswith(b"HTTP/1.1 201 Created\r\n")
    body = body.replace(b'"p"', b'"q"')
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    sock.sendall(b"POST /proxies HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert recv_exactly(sock, len(CONTINUE)) == CONTINUE
    sock.sendall(chunked[:9])
    sock.sendall(chunked[9:])
    assert recv_until_header_end(sock).startswith(b"HTTP/1.1 201 Created\r\n")
    assert sorted(env.api("GET", "/proxies").json()) == ["p", "q"]


def test_a_body_that_stops_coming_ends_the_connection_after_the_read_timeout(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request whose body stops short is not served; the connection is closed READ_TIMEOUT after its head."""
    from sagaproof.chaos.toxiproxy import _http

    monkeypatch.setattr(_http, "READ_TIMEOUT", 0.3)
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    sock = connect((host, int(port)))
    t0 = time.monotonic()
    sock.sendall(b'POST /proxies HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{"name"')
    data, how = recv_until_closed(sock, limit=30)
    assert (data, how) == (b"", "eof")
    assert time.monotonic() - t0 >= 0.3 - 0.005
    assert env.api("GET", "/proxies").json() == {}
