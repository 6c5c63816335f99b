"""`FaultProxyClient`: a thin, thread-safe client of a Toxiproxy server over toxiproxy-python.

toxiproxy-python keeps the server address in class attributes of `APIConsumer`, so it is
global to the process. This wrapper sets that address for each call while holding a
process-wide lock, so several clients (for several servers) can be used from several threads.
Proxy creation and listing go over `requests` directly, because toxiproxy-python swallows the
server's error message on a failed create (e.g. the port is in use) and cannot report the
resolved listen address of a proxy created with port 0 without a second lookup.

Every failure becomes `ChaosError` with one sentence saying what failed and what to do.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from sagaproof.chaos.errors import ChaosError
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists
from toxiproxy.proxy import Proxy
from toxiproxy.server import Toxiproxy

__all__ = ["FaultProxyClient"]

_LOCK = threading.RLock()
T = TypeVar("T")
REQUEST_TIMEOUT = 30.0


def _server_message(content: Any) -> str:
    """The `error` text of a Toxiproxy error body (bytes or str), else the raw text."""
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    text = str(content).strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text or "no details"
    if isinstance(data, dict) and "error" in data:
        return str(data["error"])
    return text


class FaultProxyClient:
    """Drive one Toxiproxy(-compatible) server: proxies, toxics, enable/disable, reset.

    Args:
        url: the API address, e.g. `http://127.0.0.1:8474`.

    Example:
        client = FaultProxyClient(server.url)
        listen = client.create_proxy("payment", upstream="127.0.0.1:4222")
        client.add_toxic("payment", "latency", latency=200)
    """

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname or parts.port is None:
            raise ChaosError(
                f"Toxiproxy URL {url!r} is not of the form http://HOST:PORT; pass the server's API address."
            )
        self.url = url.rstrip("/")
        self._host = parts.hostname
        self._port = parts.port

    # ---- plumbing ------------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        with _LOCK:
            saved = (APIConsumer.host, APIConsumer.port)
            APIConsumer.host, APIConsumer.port = self._host, self._port
            try:
                return fn()
            except NotFound as exc:
                raise ChaosError(
                    f"Cannot {what}: {_server_message(exc.args[0] if exc.args else '')} on {self.url}; check the name.",
                    status=404,
                ) from exc
            except ProxyExists as exc:
                raise ChaosError(
                    f"Cannot {what}: {_server_message(exc.args[0] if exc.args else '')}; use another name or remove the old one first.",
                    status=409,
                ) from exc
            except InvalidToxic as exc:
                raise ChaosError(
                    f"Cannot {what}: {_server_message(exc.args[0] if exc.args else '')}; fix the toxic's type, stream or attributes.",
                    status=400,
                ) from exc
            except requests.RequestException as exc:
                raise self._transport_error(what, exc) from exc
            finally:
                APIConsumer.host, APIConsumer.port = saved

    def _transport_error(self, what: str, exc: requests.RequestException) -> ChaosError:
        """The one sentence for a request that never got an answer."""
        if isinstance(exc, requests.ConnectionError):
            return ChaosError(f"Cannot {what}: no Toxiproxy server answers at {self.url}; start it or fix the URL.")
        return ChaosError(f"Cannot {what}: the request to {self.url} failed ({exc}).")

    def _request(self, what: str, method: str, path: str, body: Any = None) -> requests.Response:
        try:
            resp = requests.request(method, self.url + path, json=body, timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            raise self._transport_error(what, exc) from exc
        if resp.status_code >= 400:
            raise ChaosError(
                f"Cannot {what}: Toxiproxy answered {resp.status_code} ({_server_message(resp.content)}).",
                status=resp.status_code,
            )
        return resp

    @staticmethod
    def _check(resp: Any, what: str) -> None:
        """toxiproxy-python does not raise for 5xx: do it here."""
        status = getattr(resp, "status_code", 200)
        if status >= 400:
            raise ChaosError(
                f"Cannot {what}: Toxiproxy answered {status} ({_server_message(resp.content)}).",
                status=status,
            )

    @staticmethod
    def _proxy(name: str) -> Proxy:
        # toxiproxy-python's Proxy only needs the name to address the API.
        return Proxy(name=name, upstream="", enabled=True, listen="")

    # ---- proxies -------------------------------------------------------------------------------
    def create_proxy(self, name: str, upstream: str, listen: str = "127.0.0.1:0") -> str:
        """Create an enabled proxy and return its real listen address (`host:port`)."""
        resp = self._request(
            f"create proxy {name!r}",
            "POST",
            "/proxies",
            {"name": name, "upstream": upstream, "listen": listen},
        )
        return str(resp.json()["listen"])

    def delete_proxy(self, name: str) -> None:
        """Delete a proxy (its live connections are closed)."""
        self._call(
            f"delete proxy {name!r}",
            lambda: self._check(
                APIConsumer.delete(f"/proxies/{quote(name, safe='')}"), f"delete proxy {name!r}"
            ),
        )

    def proxies(self) -> dict[str, dict[str, Any]]:
        """Every proxy as the API shows it: `{name: {listen, upstream, enabled, toxics}}`."""
        data = self._request("list proxies", "GET", "/proxies").json()
        return {name: {k: v for k, v in value.items() if k != "Logger"} for name, value in data.items()}

    def disable(self, proxy: str) -> None:
        """Take a proxy down: its listener closes and every live connection is dropped."""
        self._call(f"disable proxy {proxy!r}", lambda: self._proxy(proxy).disable())

    def enable(self, proxy: str) -> None:
        """Bring a proxy back up on the same address."""

        def go() -> None:
            resp = APIConsumer.post(f"/proxies/{quote(proxy, safe='')}", json={"enabled": True})
            self._check(resp, f"enable proxy {proxy!r}")

        self._call(f"enable proxy {proxy!r}", go)

    def reset(self) -> None:
        """Enable every proxy and remove every toxic."""

        def go() -> None:
            self._check(APIConsumer.post("/reset"), "reset Toxiproxy")

        self._call("reset Toxiproxy", go)

    # ---- toxics --------------------------------------------------------------------------------
    def add_toxic(
        self,
        proxy: str,
        type: str,  # noqa: A002 - the Toxiproxy field name
        stream: str = "downstream",
        toxicity: float = 1.0,
        name: str | None = None,
        **attributes: Any,
    ) -> str:
        """Add a toxic to a proxy (live connections included) and return its name."""
        toxic_name = name or f"{type}_{stream}"

        def go() -> None:
            self._proxy(proxy).add_toxic(
                type=type, stream=stream, toxicity=toxicity, name=toxic_name, attributes=attributes
            )

        self._call(f"add toxic {toxic_name!r} to proxy {proxy!r}", go)
        return toxic_name

    def remove_toxic(self, proxy: str, name: str) -> None:
        """Remove a toxic from a proxy."""

        def go() -> None:
            resp = APIConsumer.delete(f"/proxies/{quote(proxy, safe='')}/toxics/{quote(name, safe='')}")
            self._check(resp, f"remove toxic {name!r}")

        self._call(f"remove toxic {name!r} from proxy {proxy!r}", go)

    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        """The toxics of a proxy as the API shows them."""
        return list(
            self._request(
                f"list toxics of proxy {proxy!r}", "GET", f"/proxies/{quote(proxy, safe='')}/toxics"
            ).json()
        )

    def version(self) -> str:
        """The server's version string."""
        return str(self._request("read the version", "GET", "/version").json()["version"])

    def running(self) -> bool:
        """True if the server accepts TCP connections."""
        return bool(self._call("probe Toxiproxy", lambda: Toxiproxy().running()))
