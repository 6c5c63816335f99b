"""`sagaproof contracts check | diff | verify-pacts`: the CLI side of the contracts package.

`check` and `diff` start nothing: they read the contracts named in the system file (or every AsyncAPI
document under a directory without one). `check --http` and `verify-pacts` bring the system up (no fault
proxies) to fuzz HTTP entry points with schemathesis and to make providers emit the messages that
consumers' pacts describe, captured from NATS and judged by pact-python's verifier.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import subprocess
from pathlib import Path
from typing import Any

from rich.console import Console
from sagaproof.harness.config import SystemSpec, find_system_file, load_system_file
from sagaproof.harness.errors import EXIT_CHECK_FAILED, EXIT_OK, ConfigError


def _has_system_file(d: str) -> bool:
    try:
        find_system_file(d)
        return True
    except ConfigError:
        return False


def contract_schemas(spec: SystemSpec) -> list[Any]:
    """The system file's plain JSON Schema mappings ([[schemas]]) as contracts.SubjectSchema objects."""
    from sagaproof import contracts

    return [contracts.SubjectSchema(subject=s["subject"], schema_path=s["schema"], producers=s["producers"],
                                    consumers=s["consumers"]) for s in spec.contract_schemas]


def _load_current(d: str) -> tuple[Any, SystemSpec | None]:
    from sagaproof import contracts

    if _has_system_file(d):
        spec = load_system_file(d)
        if not spec.contract_sources() and not spec.contract_schemas:
            raise ConfigError(f"{spec.path}: no service names a contract file; add contracts = [\"...yaml\"] to "
                              f"the services (see docs/system-file.md).")
        return contracts.load(spec.contract_sources(), contract_schemas(spec)), spec
    if not Path(d).is_dir():
        raise ConfigError(f"{d}: no such directory; pass a directory with sagaproof.toml or AsyncAPI documents.")
    return contracts.load_dir(d), None


def _wrap_contract_errors(fn: Any) -> Any:
    def inner(*a: Any, **kw: Any) -> Any:
        from sagaproof import contracts

        try:
            return fn(*a, **kw)
        except contracts.ContractsError as exc:
            raise ConfigError(str(exc)) from None

    return inner


@_wrap_contract_errors
def cmd_check(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts import render

    from sagaproof import contracts

    cs, spec = _load_current(args.dir)
    report = contracts.check(cs)
    code = report.exit_code
    fuzz: list[dict[str, Any]] = []
    if args.http:
        if spec is None:
            raise ConfigError("--http needs a system file (sagaproof.toml) that says how to start the services.")
        fuzz = _fuzz_http(spec, args.report_dir, console if not args.json else None)
        if any(not f["ok"] for f in fuzz):
            code = EXIT_CHECK_FAILED
    if args.json:
        out = report.to_dict()
        if args.http:
            out["http"] = fuzz
        console.print_json(json.dumps(out, default=str))
    else:
        render.check_table(report, console)
    return code


def _fuzz_http(spec: SystemSpec, report_dir: Path, console: Console | None) -> list[dict[str, Any]]:
    from sagaproof.contracts import fuzz_openapi
    from sagaproof.harness.system import System

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
            if console is not None:
                status = "[green]ok[/]" if rep.ok else "[bold red]FAILED[/]"
                console.print(f"http fuzz {svc_spec.name} {svc_spec.openapi}: {status} "
                              f"({getattr(rep, 'requests', '?')} requests over {len(getattr(rep, 'operations', []) or [])} "
                              f"operations)")
                for f in list(rep.failures)[:10]:
                    console.print(f"  {f}", markup=False)
    return results


def _repo_root(d: Path) -> Path:
    try:
        out = subprocess.run(["git", "-C", str(d), "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=30, check=True)
        return Path(out.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        return d.resolve()


@_wrap_contract_errors
def cmd_diff(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts import render

    from sagaproof import contracts

    head, spec = _load_current(args.dir)
    base_dir = Path(args.dir).resolve() if Path(args.dir).is_dir() else Path(args.dir).resolve().parent
    repo = _repo_root(base_dir)
    if spec is not None:
        base = contracts.load_at_git_ref(repo, args.base, spec.contract_sources(), contract_schemas(spec))
    else:
        base = contracts.load_at_git_ref(repo, args.base, Path(args.dir))
    changes = contracts.diff(base, head)
    breaking = [c for c in changes if c.breaking_for]
    if args.json:
        out = render.diff_to_dict(changes)
        out["base"] = args.base
        console.print_json(json.dumps(out, default=str))
    else:
        render.diff_table(changes, console)
        if breaking:
            console.print(f"against {args.base}: do not deploy until every consumer/producer is updated.")
    return EXIT_CHECK_FAILED if breaking else EXIT_OK


def _find_trigger(spec: SystemSpec, description: str, states: list[dict[str, Any]]) -> Any:
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


def _read_pacts(pact_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every pact file in the directory, parsed; a file that is not a pact is a ConfigError."""
    pacts = []
    for p in sorted(pact_dir.glob("*.json")):
        try:
            doc = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{p}: not a readable JSON pact file ({exc}); regenerate it with the consumer's "
                              f"pact tests or remove it.") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("provider"), dict) \
                or not isinstance(doc.get("interactions", []), list):
            raise ConfigError(f"{p}: not a pact file (no provider name or interactions list); regenerate it "
                              f"with the consumer's pact tests or remove it.")
        pacts.append((p, doc))
    return pacts


def _correlation(spec: SystemSpec, sent: Any) -> dict[str, Any]:
    """The saga keys (e.g. order_id) the trigger's answer or published body names; the captured message
    must carry the same values, so a message of an earlier, still running saga is never taken."""
    if not isinstance(sent, dict):
        return {}
    keys = {s.key for s in spec.sagas.values()}
    return {k: sent[k] for k in keys if isinstance(sent.get(k), str | int)}


# pact-python's Verifier waits request_timeout for each message; we give it the longest trigger timeout
# plus a margin, so a trigger's own timeout is what decides.
_PACT_WAIT_LIMIT = 120.0


def _make_producer(system: Any, spec: SystemSpec, problems: list[str] | None = None) -> Any:
    """produce(description, states) for pact verification: fire the trigger, capture the message from NATS.

    A trigger that fails (an HTTP error, no message in time) is appended to *problems* and produces an
    empty message, which fails the interaction: pact-python would otherwise report a raising handler
    only as a traceback on stderr and an empty message.
    """
    import nats

    async def capture(trigger: Any) -> dict[str, Any]:
        nc = await nats.connect(system.nats_url)
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
            want = _correlation(spec, sent)
            while True:
                msg = await queue.get()
                try:
                    body: Any = json.loads(msg.data) if msg.data else None
                except ValueError:
                    body = bytes(msg.data)  # pact shows the mismatch against the expected JSON
                if not want or (isinstance(body, dict) and all(body.get(k) == v for k, v in want.items())):
                    return {"body": body, "metadata": {"subject": msg.subject}}
        finally:
            await nc.close()

    def produce(description: str, states: list[dict[str, Any]]) -> dict[str, Any]:
        trigger = _find_trigger(spec, description, states)
        wait = min(trigger.timeout, _PACT_WAIT_LIMIT)
        try:
            return system.loop.run(asyncio.wait_for(capture(trigger), wait), timeout=wait + 1)
        except TimeoutError:
            problem = (f"no message on {trigger.capture} within {wait:g}s after the trigger; check the trigger's "
                       f"capture subject and that the provider emits it")
        except Exception as exc:  # noqa: BLE001 - reported with the interaction
            problem = str(exc) or type(exc).__name__
        if problems is not None:
            problems.append(f"{description}: {problem}")
        return {"body": None, "metadata": {}}

    return produce


@_wrap_contract_errors
def cmd_verify_pacts(args: argparse.Namespace, console: Console) -> int:
    from sagaproof.contracts import verify_pacts
    from sagaproof.harness.system import System

    spec = load_system_file(args.dir)
    pact_dir = args.pacts or spec.pacts.dir
    if pact_dir is None:
        raise ConfigError(f"{spec.path}: no pact directory; set [pacts] dir = \"contracts/pacts\" or pass --pacts DIR.")
    pact_dir = Path(pact_dir)
    if not pact_dir.is_dir() or not any(pact_dir.glob("*.json")):
        raise ConfigError(f"{pact_dir}: no pact files (*.json) here; run the consumers' pact tests first, or pass "
                          f"--pacts DIR.")
    pacts = _read_pacts(pact_dir)
    providers = sorted({doc["provider"].get("name") for _, doc in pacts} - {None})
    if not providers:
        raise ConfigError(f"{pact_dir}: the pact files name no provider; regenerate them with the consumers' pact "
                          f"tests.")
    unknown = [p for p in providers if p not in spec.services]
    if unknown:
        raise ConfigError(f"{pact_dir}: pacts name provider '{unknown[0]}', which is not a service of {spec.path}; "
                          f"rename the pact's provider or add the service.")
    # Every message needs a trigger: say so now, before anything starts (else it is one failed interaction).
    for _, doc in pacts:
        for inter in doc.get("interactions") or []:
            if isinstance(inter, dict):
                _find_trigger(spec, str(inter.get("description", "")), list(inter.get("providerStates") or []))
    ok = True
    with System(spec, report_dir=args.report_dir) as system:
        problems: list[str] = []
        produce = _make_producer(system, spec, problems)
        for provider in providers:
            del problems[:]
            longest = max((t.timeout for t in spec.pacts.triggers), default=10.0)
            log = system.log_dir / f"pact-verifier-{provider}.log"
            with _output_to(log):  # pact-python's verifier prints from native code: keep it in the report dir
                result = verify_pacts(pact_dir, provider, produce, request_timeout=longest + 5.0)
            passed = result.ok and not problems
            status = "[green]verified[/]" if passed else "[bold red]FAILED[/]"
            console.print(f"pacts for provider [bold]{provider}[/]: {status} "
                          f"({len(result.interactions)} interaction(s), {len(result.pact_files)} file(s))")
            for line in _mismatch_lines(result.errors)[:20]:
                console.print(f"  {line}", markup=False, soft_wrap=True)
            for problem in problems[:10]:
                console.print(f"  trigger failed: {problem}", markup=False, soft_wrap=True)
            if not passed:
                console.print(f"  pact-python's full output: {log}", markup=False, soft_wrap=True)
            ok = ok and passed
    return EXIT_OK if ok else EXIT_CHECK_FAILED


@contextlib.contextmanager
def _output_to(path: Path) -> Any:
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


def _mismatch_lines(errors: list[str]) -> list[str]:
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


def run_contracts_command(args: argparse.Namespace, console: Console) -> int:
    """Dispatch `sagaproof contracts <command>`."""
    commands = {"check": cmd_check, "diff": cmd_diff, "verify-pacts": cmd_verify_pacts}
    return commands[args.contracts_command](args, console)
