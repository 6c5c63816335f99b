"""The contracts commands' runs: bringing the system up (no fault proxies) to fuzz its HTTP entry points and
to make providers emit the messages that consumers' pacts describe.

The command (:mod:`harness.front.contracts_cmd`) parses and renders; this module starts the environment, drives it
and hands back results (a callback per finished service or provider), so the front-end has no logic of its own
and the environment is started only from the engine's floor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sagaproof.harness.config import SystemSpec, field_at
from sagaproof.harness.errors import ConfigError

if TYPE_CHECKING:  # the contracts package is imported when a command runs
    from sagaproof.contracts.pacts import Produce
    from sagaproof.harness.env.system import System

__all__ = ["correlation", "find_trigger", "fuzz_http", "make_producer", "mismatch_lines", "read_pacts", "verify_providers"]


def fuzz_http(spec: SystemSpec, report_dir: Path,
              on_result: Callable[[Any, Any], None] | None = None) -> list[dict[str, Any]]:
    """Bring the system up and fuzz every service that declares ``openapi`` with schemathesis; one dict per
    service. ``on_result(service_spec, report)`` is called as each service is done."""
    from sagaproof.contracts import fuzz_openapi
    from sagaproof.harness.env.system import System

    targets = [s for s in spec.services.values() if s.openapi]
    if not targets:
        raise ConfigError(f"{spec.path}: --http: no service declares openapi = \"/openapi.json\"; add it to the "
                          f"service that serves an HTTP entry point.")
    results = []
    with System(spec, report_dir=report_dir) as system:
        for svc_spec in targets:
            svc = system.services[svc_spec.name]
            rep = fuzz_openapi(svc.url, f"{svc.url}{svc_spec.openapi}", max_examples=50, seed=0)
            d = rep.to_dict() if hasattr(rep, "to_dict") else {"ok": rep.ok, "failures": [str(f) for f in rep.failures]}
            d["service"] = svc_spec.name
            results.append(d)
            if on_result is not None:
                on_result(svc_spec, rep)
    return results


def verify_providers(spec: SystemSpec, pact_dir: Path, providers: list[str], report_dir: Path,
                     on_provider: Callable[[str, Any, list[str], Path], None]) -> bool:
    """Bring the system up and verify each provider against the pacts in *pact_dir*; True if all passed.

    ``on_provider(provider, result, problems, log)`` is called per provider with pact-python's result, the
    triggers that failed, and the file the verifier's own output went to."""
    from sagaproof.contracts import verify_pacts
    from sagaproof.harness.env.system import System

    ok = True
    with System(spec, report_dir=report_dir) as system:
        problems: list[str] = []
        produce = make_producer(system, spec, problems)
        for provider in providers:
            del problems[:]
            longest = max((t.timeout for t in spec.pacts.triggers), default=10.0)
            log = system.log_dir / f"pact-verifier-{provider}.log"
            with output_to(log):  # pact-python's verifier prints from native code: keep it in the report dir
                result = verify_pacts(pact_dir, provider, produce, request_timeout=longest + 5.0)
            on_provider(provider, result, list(problems), log)
            ok = ok and result.ok and not problems
    return ok


def find_trigger(spec: SystemSpec, description: str, states: list[dict[str, Any]]) -> Any:
    """The [[pacts.triggers]] entry for a message: by its description first, else by a provider state."""
    names = [str(s.get("name")) for s in states if isinstance(s, dict) and s.get("name") is not None]
    for t in spec.pacts.triggers:
        if t.description is not None and t.description == description:
            return t
    for t in spec.pacts.triggers:
        if t.state is not None and t.state in names:
            return t
    raise ConfigError(f"{spec.path}: no [[pacts.triggers]] entry for the message {description!r}"
                      f"{' (states: ' + ', '.join(names) + ')' if names else ''}; add one with "
                      f"description = {json.dumps(description)}, capture = \"<subject>\" and http or publish.")


def correlation(spec: SystemSpec, sent: Any) -> dict[str, Any]:
    """The saga keys (e.g. order_id) the trigger's answer or published body names; the captured message
    must carry the same values, so a message of an earlier, still running saga is never taken."""
    if not isinstance(sent, dict):
        return {}
    from sagaproof.harness.session.workload import request_key

    keys = {s.key: request_key(spec.workload, s, sent, None) for s in spec.sagas.values()}  # data.order_id too
    return {k: v for k, v in keys.items() if v is not None}


# pact-python's Verifier waits request_timeout for each message; we give it the longest trigger timeout
# plus a margin, so a trigger's own timeout is what decides.
_PACT_WAIT_LIMIT = 120.0


def make_producer(system: System, spec: SystemSpec, problems: list[str] | None = None) -> Produce:
    """produce(description, states) for pact verification: fire the trigger, capture the message from NATS.

    A trigger that fails (an HTTP error, no message in time) is appended to *problems* and produces an
    empty message, which fails the interaction: pact-python would otherwise report a raising handler
    only as a traceback on stderr and an empty message.
    """
    import nats

    loop = system.loop
    if loop is None:
        raise RuntimeError("pact verification needs a started System (use it inside `with System(...)`)")

    async def capture(trigger: Any) -> dict[str, Any]:
        nc = await nats.connect(servers=system.nats_urls, **system.nats_options)  # attach: creds/TLS of [nats]
        try:
            queue: asyncio.Queue[Any] = asyncio.Queue()
            await nc.subscribe(trigger.capture, cb=queue.put)
            await nc.flush()
            if trigger.publish is not None:
                sent = trigger.publish.get("body", {})
                await nc.publish(trigger.publish["subject"], json.dumps(sent).encode())
                await nc.flush()
            else:
                h = trigger.http
                svc = system.services[h["service"]]
                resp = await asyncio.to_thread(svc.http.request, h.get("method", "POST").upper(), h.get("path", "/"),
                                               json_body=h.get("body"), timeout=_PACT_WAIT_LIMIT)
                if not resp.ok:
                    raise RuntimeError(f"{h.get('method', 'POST').upper()} {h.get('path', '/')} on {h['service']} "
                                       f"answered {resp.status}: {resp.text[:200]}")
                try:
                    sent = resp.json()
                except ValueError:
                    sent = None
            want = correlation(spec, sent)
            while True:
                msg = await queue.get()
                try:
                    body: Any = json.loads(msg.data) if msg.data else None
                except ValueError:
                    body = bytes(msg.data)  # pact shows the mismatch against the expected JSON
                if not want or (isinstance(body, dict) and all(field_at(body, k) == v for k, v in want.items())):
                    return {"body": body, "metadata": {"subject": msg.subject}}
        finally:
            await nc.close()

    def produce(description: str, states: list[dict[str, Any]]) -> dict[str, Any]:
        trigger = find_trigger(spec, description, states)
        wait = min(trigger.timeout, _PACT_WAIT_LIMIT)
        try:
            return loop.run(asyncio.wait_for(capture(trigger), wait), timeout=wait + 1)
        except TimeoutError:
            problem = (f"no message on {trigger.capture} within {wait:g}s after the trigger; check the trigger's "
                       f"capture subject and that the provider emits it")
        except Exception as exc:  # noqa: BLE001 - reported with the interaction
            problem = str(exc) or type(exc).__name__
        if problems is not None:
            problems.append(f"{description}: {problem}")
        return {"body": None, "metadata": {}}

    return produce


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so native code too) to a file."""
    import os
    import sys

    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def read_pacts(pact_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every pact file in the directory, parsed; a file that is not a pact is a ConfigError."""
    pacts = []
    for p in sorted(pact_dir.glob("*.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{p}: not a readable JSON pact file ({exc}); regenerate it with the consumer's "
                              f"pact tests or remove it.") from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("provider"), dict) \
                or not isinstance(doc.get("interactions", []), list):
            raise ConfigError(f"{p}: not a pact file (no provider name or interactions list); regenerate it "
                              f"with the consumer's pact tests or remove it.")
        pacts.append((p, doc))
    return pacts


def mismatch_lines(errors: list[str]) -> list[str]:
    """pact-python's errors as one readable line per mismatch (interaction, JSON path, what differs)."""
    out: list[str] = []
    for err in errors:
        for raw in str(err).splitlines():
            try:
                data = json.loads(raw)
            except ValueError:
                if raw.strip() and not raw.startswith("Failed to execute verifier"):
                    out.append(raw.strip())
                continue
            mismatch = data.get("mismatch") if isinstance(data, dict) else None
            if not isinstance(mismatch, dict):
                out.append(raw.strip())
                continue
            where = str(data.get("interaction", "")).replace("Verifying a pact between ", "")
            for m in mismatch.get("mismatches") or [mismatch]:
                out.append(f"{where}: at {m.get('path', '$')}: {m.get('mismatch', m)}")
    return out
