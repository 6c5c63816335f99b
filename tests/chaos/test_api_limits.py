"""Invalid input never changes state, and limits are consistent: what can be created can be addressed.

* Out-of-range or non-JSON numbers (toxicity 1e39, 1e400, NaN) are a 400 and store nothing; listing
  never fails afterwards (it answered 500 until /reset before).
* Names are capped (1024 characters) so that every proxy and toxic that can be created can be
  fetched, changed and deleted, whatever characters it has ("/", "?", "%", "..": percent-encoded).
* Over-limit requests (head, body) get the API's JSON error body like every other error.
"""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any
from urllib.parse import quote

import pytest
from chaos_testkit import Env
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sagaproof.chaos.toxiproxy._http import MAX_BODY, MAX_HEAD
from sagaproof.chaos.toxiproxy._proxy import MAX_NAME

BAD_NUMBERS = ["1e39", "-1e39", "1e400", "-1e400", "3.5e38", "NaN", "Infinity", "-Infinity"]


def raw(env: Env, method: str, path: str, body: bytes | str | None = None, headers: dict[str, str] | None = None) -> tuple[int, str, dict[str, str]]:
    """One request with the path sent exactly as given (no client-side normalisation)."""
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()


def json_error(status: int, text: str, headers: dict[str, str]) -> str:
    assert headers["content-type"] == "text/plain; charset=utf-8"
    body = json.loads(text)
    assert body["status"] == status
    return body["error"]


def state(env: Env) -> str:
    resp = env.api("GET", "/proxies")
    assert resp.status_code == 200, resp.text
    for name in resp.json():
        toxics = env.api("GET", f"/proxies/{quote(name, safe='')}/toxics")
        assert toxics.status_code == 200, toxics.text
    return resp.text


@pytest.mark.parametrize("number", BAD_NUMBERS)
def test_out_of_range_toxicity_is_400_and_stores_nothing(env: Env, number: str) -> None:
    env.proxy("p")
    env.toxic("p", "latency", latency=5)
    before = state(env)
    status, text, headers = raw(env, "POST", "/proxies/p/toxics", '{"name":"bad","type":"latency","toxicity":@}'.replace("@", number))
    assert status == 400, text
    assert json_error(400, text, headers).startswith("bad request body: ")
    status, text, headers = raw(env, "PATCH", "/proxies/p/toxics/latency_downstream", '{"toxicity":@}'.replace("@", number))
    assert status == 400, text
    if "e39" not in number and "e38" not in number:  # in range for a float64 attribute
        status, text, headers = raw(
            env, "POST", "/proxies/p/toxics", '{"name":"bad","type":"nats_drop","attributes":{"probability":@}}'.replace("@", number)
        )
        assert status == 400, text
    assert state(env) == before
    assert env.api("GET", "/proxies/p/toxics/bad").status_code == 404


def test_largest_float32_toxicity_is_accepted() -> None:
    """3.4028235e38 is float32's largest value: in range, as Go's decoder says."""
    from sagaproof.chaos.toxiproxy import _gojson

    value = _gojson.get_float({"toxicity": _gojson.decode(b"3.4028235e38")}, "toxicity", 1.0, "T", bits=32)
    assert value == pytest.approx(3.4028235e38, rel=1e-7)


def test_lone_surrogates_become_replacement_characters(env: Env) -> None:
    status, text, _ = raw(
        env, "POST", "/proxies", '{"name":"a\\ud800b","listen":"127.0.0.1:0","upstream":"@"}'.replace("@", env.echo_addr)
    )
    assert status == 201, text
    assert json.loads(text)["name"] == "a\ufffdb"
    assert "a\ufffdb" in env.api("GET", "/proxies").json()


# ---- property: any toxic request that fails changes nothing, and listing never fails ---------------
LEAF = st.one_of(
    st.sampled_from(BAD_NUMBERS + ["0", "-1", "1", "0.5", "1e-50", "3.4028235e38", "9223372036854775808", "true", "null", '""', '"x"', "[]", "{}"]),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.text(max_size=8).map(json.dumps),
)
ATTRS = ["latency", "jitter", "rate", "delay", "timeout", "average_size", "size_variation", "bytes", "subject", "probability", "bogus"]
TYPES = ["latency", "bandwidth", "slicer", "timeout", "limit_data", "slow_close", "reset_peer", "noop", "nats_drop", "nats_delay", "nope", ""]


@st.composite
def toxic_bodies(draw: st.DrawFn) -> str:
    fields: dict[str, str] = {}
    if draw(st.booleans()):
        fields["name"] = json.dumps(draw(st.sampled_from(["t1", "t2", "latency_downstream", ""])))
    if draw(st.booleans()):
        fields["type"] = json.dumps(draw(st.sampled_from(TYPES)))
    if draw(st.booleans()):
        fields["stream"] = json.dumps(draw(st.sampled_from(["upstream", "downstream", "UPSTREAM", "both", ""])))
    if draw(st.booleans()):
        fields["toxicity"] = draw(LEAF)
    if draw(st.booleans()):
        keys = draw(st.lists(st.sampled_from(ATTRS), max_size=4, unique=True))
        fields["attributes"] = "{" + ",".join(f'"{k}":{draw(LEAF)}' for k in keys) + "}"
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


def test_failed_toxic_requests_change_nothing(env: Env) -> None:
    env.proxy("p")
    env.toxic("p", "latency", latency=5)

    @settings(max_examples=150, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(body=toxic_bodies(), method=st.sampled_from(["POST /proxies/p/toxics", "PATCH /proxies/p/toxics/latency_downstream"]))
    @example(body='{"name":"x","type":"latency","toxicity":1e39}', method="POST /proxies/p/toxics")
    @example(body='{"toxicity":NaN}', method="PATCH /proxies/p/toxics/latency_downstream")
    def check(body: str, method: str) -> None:
        before = state(env)
        verb, path = method.split(" ")
        status, text, headers = raw(env, verb, path, body)
        assert status < 500, (body, status, text)
        if status >= 400:
            json_error(status, text, headers)
            assert state(env) == before, body
        else:
            state(env)  # what was stored can be shown
            if verb == "POST":
                name = json.loads(text)["name"]
                assert env.api("DELETE", f"/proxies/p/toxics/{quote(name, safe='')}").status_code == 204

    check()


# ---- names ----------------------------------------------------------------------------------------
def test_a_name_over_the_limit_is_refused_with_a_json_error(env: Env) -> None:
    long = "n" * 70_000
    status, text, headers = raw(
        env, "POST", "/proxies", json.dumps({"name": long, "listen": "127.0.0.1:0", "upstream": env.echo_addr})
    )
    assert status == 400
    assert json_error(400, text, headers) == f"proxy name too long: 70000 characters, at most {MAX_NAME}"
    assert env.api("GET", "/proxies").json() == {}
    status, text, headers = raw(
        env,
        "POST",
        "/populate",
        json.dumps([{"name": "ok", "upstream": env.echo_addr, "listen": "127.0.0.1:0"}, {"name": long, "upstream": env.echo_addr}]),
    )
    assert status == 400 and json_error(400, text, headers).endswith("at proxy 2")
    assert env.api("GET", "/proxies").json() == {}
    env.proxy("p")
    resp = env.api("POST", "/proxies/p/toxics", json={"name": "t" * (MAX_NAME + 1), "type": "noop"})
    assert resp.status_code == 400 and resp.json()["error"].startswith("toxic name too long")
    assert env.api("GET", "/proxies/p/toxics").json() == []


def test_the_longest_names_can_be_created_fetched_and_deleted(env: Env) -> None:
    """The worst case for the URL: names at the limit of 4-byte characters, every one percent-encoded."""
    proxy = "/?%#. " + "\U0001f600" * (MAX_NAME - 6)
    toxic = "\U0001f4a5" * MAX_NAME
    assert len(proxy) == len(toxic) == MAX_NAME
    status, text, _ = raw(env, "POST", "/proxies", json.dumps({"name": proxy, "listen": "127.0.0.1:0", "upstream": env.echo_addr}))
    assert status == 201, text
    p = "/proxies/" + quote(proxy, safe="")
    status, text, _ = raw(env, "POST", p + "/toxics", json.dumps({"name": toxic, "type": "latency"}))
    assert status == 200, text
    t = p + "/toxics/" + quote(toxic, safe="")
    assert len(t) > 20_000
    assert raw(env, "GET", t)[0] == 200
    assert raw(env, "PATCH", t, '{"attributes":{"latency":3}}')[0] == 200
    assert raw(env, "DELETE", t)[0] == 204
    status, text, _ = raw(env, "GET", p)
    assert status == 200 and json.loads(text)["name"] == proxy
    assert raw(env, "DELETE", p)[0] == 204
    assert env.api("GET", "/proxies").json() == {}


@settings(max_examples=60, deadline=None, database=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(name=st.text(min_size=1, max_size=12))
@example(name="..")
@example(name=".")
@example(name="a/b")
@example(name="a%2Fb")
@example(name="?x#y")
@example(name=" ")
def test_every_proxy_that_can_be_created_can_be_deleted(name: str) -> None:
    """Any name: if creating it answers 201, it can be fetched and deleted by its percent-encoded name."""
    import sagaproof.chaos.toxiproxy as tp
    from chaos_testkit import LoopThread

    loop = LoopThread()
    server = loop.run(tp.serve())
    try:
        env: Any = type("E", (), {"url": server.url})()
        status, text, _ = raw(env, "POST", "/proxies", json.dumps({"name": name, "upstream": "127.0.0.1:9", "enabled": False}))
        if status != 201:
            assert status == 400, text  # refused, with a reason, never half-created
            return
        path = "/proxies/" + quote(name, safe="")
        status, text, _ = raw(env, "GET", path)
        assert status == 200 and json.loads(text)["name"] == name, (path, status, text)
        assert raw(env, "DELETE", path)[0] == 204
        assert raw(env, "GET", "/proxies")[1] == "{}"
    finally:
        loop.run(server.close())
        loop.stop()


# ---- over-limit requests --------------------------------------------------------------------------
def test_an_over_limit_body_gets_a_json_413(env: Env) -> None:
    resp = env.api("POST", "/proxies", data=b" " * (MAX_BODY + 1))
    assert resp.status_code == 413
    assert json_error(413, resp.text, {k.lower(): v for k, v in resp.headers.items()}).startswith("request body too large")
    assert env.api("GET", "/proxies").json() == {}


def test_an_over_limit_head_gets_a_json_431(env: Env) -> None:
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"GET /proxies HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * MAX_HEAD + b"\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 ")
    assert json.loads(body) == {
        "error": f"request head too large: the request line and headers are limited to {MAX_HEAD} bytes",
        "status": 431,
    }


def test_a_malformed_request_gets_a_json_400(env: Env) -> None:
    host, port = env.url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"NOT HTTP\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert json.loads(body)["error"].startswith("malformed HTTP request")
