"""Attach mode in the system file: what it accepts, and one sentence for each mistake (exit 2 on the CLI).

Also the pieces that need no deployment: nats-py connect options from [nats] creds/nkey/tls, the fault menu cut
to what can be injected (with a note per kind left out), proxy names, and fault commands run as given.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from sagaproof.harness.config import load_system_file
from sagaproof.harness.env.attach import (
    AttachedService,
    FaultCommandError,
    nats_connect_options,
)
from sagaproof.harness.errors import ConfigError
from sagaproof.harness.session.nemesis import ProxyNames, usable_menu

from tests.conftest import SAGAPROOF

SEED = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU"  # a syntactically valid user nkey seed
ATTACHED = """
[nats]
url = "nats://127.0.0.1:4222,nats://127.0.0.1:4223"

[services.payment]
url = "http://127.0.0.1:8081/"
ready = { http = "/health" }
proxy = "payment-nats"
commands = { kill = ["kubectl", "delete", "pod", "-l", "app={name}"], restart = "kubectl rollout status deploy/{name}" }
"""


def _load(tmp_path: Path, text: str) -> object:
    (tmp_path / "sagaproof.toml").write_text(text)
    return load_system_file(tmp_path)


def test_an_attached_service_is_read_with_its_url_proxy_and_commands(tmp_path: Path):
    spec = _load(tmp_path, ATTACHED)
    svc = spec.services["payment"]
    assert svc.attached and svc.command == () and svc.url == "http://127.0.0.1:8081"
    assert svc.proxy == "payment-nats"
    assert svc.commands == {"kill": ("kubectl", "delete", "pod", "-l", "app={name}"),
                            "restart": ("kubectl", "rollout", "status", "deploy/{name}")}
    assert not spec.nats.embedded


@pytest.mark.parametrize(("text", "key", "fix"), [
    (ATTACHED.replace('url = "http://127.0.0.1:8081/"', 'url = "http://127.0.0.1:8081/"\ncommand = ["x"]'),
     "services.payment", "not both"),
    (ATTACHED.replace('url = "nats://127.0.0.1:4222,nats://127.0.0.1:4223"', ""), "services.payment.url",
     "set nats.url"),
    (ATTACHED.replace("http://127.0.0.1:8081/", "payment:8081"), "services.payment.url", "HTTP base URL"),
    (ATTACHED.replace('ready = { http = "/health" }', 'ready = { log = "up" }'), "services.payment.ready.log",
     "probe it with"),
    (ATTACHED.replace("app={name}", "app={service}"), "services.payment.commands.kill", "unknown placeholder"),
    (ATTACHED.replace("restart =", "restrat ="), "services.payment.commands.restrat", "did you mean 'restart'"),
    (ATTACHED.replace('proxy = "payment-nats"', "proxy = 3"), "services.payment.proxy", "must be a string"),
    (ATTACHED + '\n[nats.tls]\ncert = "c.pem"\n', "nats.tls.cert", "does not exist"),
    (ATTACHED.replace("[nats]", '[nats]\nnkey = "seed.nk"'), "nats.nkey", "does not exist"),
    ("[nats]\ncreds = 'x.creds'\n[services.a]\ncommand = ['x']\n", "nats.creds", "set nats.url"),
], ids=["url-and-command", "no-nats-url", "bad-url", "log-probe", "bad-placeholder", "unknown-command",
        "proxy-type", "tls-file-missing", "nkey-file-missing", "creds-without-url"])
def test_attach_mistakes_are_one_sentence(tmp_path: Path, text: str, key: str, fix: str):
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, text)
    msg = str(err.value)
    assert key in msg and fix in msg, msg
    assert "\n" not in msg


def test_nats_access_becomes_nats_py_connect_options(tmp_path: Path):
    (tmp_path / "seed.nk").write_text(SEED + "\n")
    (tmp_path / "pub.nk").write_text("UAB...\n")
    (tmp_path / "x.creds").write_text("-----BEGIN NATS USER JWT-----\n")
    spec = _load(tmp_path, ATTACHED.replace("[nats]", '[nats]\nnkey = "seed.nk"'))
    assert nats_connect_options(spec.nats) == {"nkeys_seed": str(tmp_path / "seed.nk")}
    spec = _load(tmp_path, ATTACHED.replace("[nats]", '[nats]\ncreds = "x.creds"'))
    assert nats_connect_options(spec.nats) == {"user_credentials": str(tmp_path / "x.creds")}
    with pytest.raises(ConfigError, match="does not hold a user nkey seed"):
        _load(tmp_path, ATTACHED.replace("[nats]", '[nats]\nnkey = "pub.nk"'))
    with pytest.raises(ConfigError, match="cannot be combined"):
        _load(tmp_path, ATTACHED.replace("[nats]", '[nats]\nnkey = "seed.nk"\ncreds = "x.creds"'))


def test_bad_attach_config_on_the_cli_is_exit_2(tmp_path: Path):
    (tmp_path / "sagaproof.toml").write_text(ATTACHED.replace("http://127.0.0.1:8081/", "ftp://x"))
    proc = subprocess.run([*SAGAPROOF, "run", str(tmp_path), "--report-dir", str(tmp_path / "r")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "services.payment.url" in proc.stderr and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------- the menu, proxies, commands


class _Recorder:
    """A fault proxy client that only notes the calls it gets (to check the names the nemesis' calls carry)."""

    def __init__(self, toxics: dict[str, list[dict]] | None = None):
        self.calls: list[tuple] = []
        self._toxics = toxics or {}

    def add_toxic(self, proxy: str, *args: object, **kw: object) -> str:
        self.calls.append(("add_toxic", proxy, kw.get("name")))
        if args and args[0] == "nats_drop" and proxy not in self._toxics:
            from sagaproof.chaos.errors import ChaosError

            raise ChaosError("bad toxic type")
        return str(kw.get("name"))

    def remove_toxic(self, proxy: str, name: str) -> None:
        self.calls.append(("remove_toxic", proxy, name))

    def toxics(self, proxy: str) -> list[dict]:
        return self._toxics.get(proxy, [])

    def enable(self, proxy: str) -> None:
        self.calls.append(("enable", proxy))


def _system(spec: object, proxies: object = None, names: dict | None = None) -> SimpleNamespace:
    system = SimpleNamespace(spec=spec, proxies=proxies, proxy_names=dict(names or {}), nats=None,
                             log_dir=Path("/tmp"), bus=None, reaper=None)
    system.services = {n: AttachedService(system, s) for n, s in spec.services.items()}
    return system


def test_the_menu_keeps_only_what_can_be_injected_and_says_why(tmp_path: Path):
    spec = _load(tmp_path, ATTACHED)
    menu = ["latency", "duplicate", "kill", "pause", "nats_restart"]
    keep, notes = usable_menu(_system(spec), menu)
    assert keep == ["kill"]
    assert notes == [
        "attach mode: fault 'latency' left out of the menu: no Toxiproxy for the attached services (set "
        "chaos.toxiproxy_url).",
        "attach mode: fault 'duplicate' left out of the menu: no Toxiproxy for the attached services (set "
        "chaos.toxiproxy_url).",
        "attach mode: fault 'pause' left out of the menu: no pause and resume commands for payment.",
        "attach mode: fault 'nats_restart' left out of the menu: the broker is not started by the harness "
        "(nats.url).",
    ]
    # a Toxiproxy without NATS-aware toxics (the probe is refused): network faults stay, message faults go
    keep, notes = usable_menu(_system(spec, _Recorder(), {"payment": "payment-nats"}), menu)
    assert keep == ["latency", "kill"]
    assert any("'duplicate' left out of the menu: the Toxiproxy at chaos.toxiproxy_url has no NATS-aware" in n
               for n in notes)
    # sagaproof's own toxiproxy has them
    client = _Recorder({"payment-nats": []})
    keep, _ = usable_menu(_system(spec, client, {"payment": "payment-nats"}), menu)
    assert keep == ["latency", "duplicate", "kill"]
    assert ("remove_toxic", "payment-nats", "sagaproof_probe") in client.calls  # the probe leaves nothing behind


def test_proxy_names_translate_service_names_and_reset_only_their_proxies():
    client = _Recorder({"payment-nats": [{"name": "latency_downstream"}]})
    named = ProxyNames(client, {"payment": "payment-nats"})
    named.add_toxic("payment", "latency", name="l1")
    named.reset()
    assert client.calls == [("add_toxic", "payment-nats", "l1"),
                            ("remove_toxic", "payment-nats", "latency_downstream"), ("enable", "payment-nats")]


def test_fault_commands_run_with_placeholders_and_fail_with_one_sentence(tmp_path: Path):
    from sagaproof.harness.env.reaper import Reaper

    out = tmp_path / "out.txt"
    script = f"import sys; open({str(out)!r}, 'a').write(' '.join(sys.argv[1:]) + chr(10))"
    text = ATTACHED.replace(
        'commands = { kill = ["kubectl", "delete", "pod", "-l", "app={name}"], restart = "kubectl rollout status '
        'deploy/{name}" }',
        f'commands = {{ kill = ["{{python}}", "-c", "{script}", "{{name}}", "{{host}}", "{{port}}", "{{proxy}}"], '
        f'pause = ["{{python}}", "-c", "import sys; print(\\"no such pod\\"); sys.exit(4)"] }}')
    spec = _load(tmp_path, text)
    system = _system(spec)
    system.log_dir = tmp_path / "logs"
    system.reaper = Reaper()
    system.bus = SimpleNamespace(emit=lambda e: None)
    svc = AttachedService(system, spec.services["payment"])
    svc.kill()
    assert out.read_text() == "payment 127.0.0.1 8081 payment-nats\n" and not svc.running
    with pytest.raises(FaultCommandError) as err:
        svc.pause()
    assert "the pause command of service 'payment' exited with code 4" in str(err.value)
    assert "no such pod" in str(err.value)
    with pytest.raises(FaultCommandError, match="has no resume command"):
        svc.resume()
    assert sys.executable in (tmp_path / "logs" / "payment.commands.log").read_text()


def test_seeds_of_an_attached_system_cannot_run_at_once(tmp_path: Path):
    (tmp_path / "sagaproof.toml").write_text(ATTACHED)
    proc = subprocess.run([*SAGAPROOF, "run", str(tmp_path), "--seeds", "1-4", "--jobs", "2", "--report-dir",
                           str(tmp_path / "r")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "must run one at a time" in proc.stderr and "Traceback" not in proc.stderr
    assert not list((tmp_path / "r").glob("seed-*"))
