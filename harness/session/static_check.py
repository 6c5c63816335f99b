"""The static contract check of a run: cached by the contracts' content, and run beside start-up.

``sagaproof run`` checks that every producer's messages match what each consumer accepts before it judges the
run. On real contracts that check can take a minute, and it gives the same answer as long as the contracts do not
change; so its result is kept in ``SYSTEM_DIR/.sagaproof/cache/`` under a key made of the contracts' content (every
contract and schema file in the contracts' folders, the files the system file names, and the checker's own code),
and a run with unchanged contracts reads it back in milliseconds. When there is no cached result, the check runs in
a process of its own (so it neither waits for nor slows down the recorder, which shares this interpreter) while the
environment starts and the workload runs; the run waits for it only when it judges.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sagaproof.harness.checks.findings import Finding
from sagaproof.harness.checks.results import CheckOutcome
from sagaproof.harness.config import SystemSpec

CHECK_NAME = "static contract compatibility"
_CONTRACT_SUFFIXES = (".yaml", ".yml", ".json")
_MAX_FILES = 5000


def _contract_files(spec: SystemSpec) -> list[Path]:
    """Every file the check may read: the named contracts and schemas, and every YAML/JSON file in their folders
    (a ``$ref`` may point at any of them)."""
    named = [Path(p) for paths in spec.contract_sources().values() for p in paths]
    named += [Path(s["schema"]) for s in spec.contract_schemas]
    folders = sorted({p.resolve().parent for p in named})
    found: set[Path] = {p.resolve() for p in named}
    for d in folders:
        for p in d.rglob("*"):
            if len(found) >= _MAX_FILES:
                break
            if p.suffix in _CONTRACT_SUFFIXES and p.is_file() and ".sagaproof" not in p.parts:
                found.add(p.resolve())
    return sorted(found)


def _schemas(spec: SystemSpec) -> list[dict[str, Any]]:
    return [{"subject": s["subject"], "schema": str(s["schema"]), "producers": list(s["producers"]),
             "consumers": list(s["consumers"])} for s in spec.contract_schemas]


def cache_key(spec: SystemSpec) -> str:
    """A digest of what the check's answer depends on: the contracts' content and the checker's code."""
    h = hashlib.sha256(b"sagaproof static contract check 1\0")
    h.update(json.dumps({k: [str(p) for p in v] for k, v in sorted(spec.contract_sources().items())}).encode())
    h.update(json.dumps(_schemas(spec), sort_keys=True).encode())
    for p in _contract_files(spec):
        h.update(str(p).encode() + b"\0")
        h.update(p.read_bytes())
    import sagaproof.contracts as contracts_pkg

    for p in sorted(Path(contracts_pkg.__file__).parent.rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:32]


def cache_dir(spec: SystemSpec) -> Path:
    return spec.root / ".sagaproof" / "cache"


def _outcome(data: dict[str, Any]) -> CheckOutcome:
    problems = [str(p) for p in data.get("problems", [])]
    ok = bool(data.get("ok"))
    summary = "every producer matches its consumers" if ok else f"{len(problems)} problem(s)"
    if data.get("cached"):
        summary += " (cached result of unchanged contracts)"
    return CheckOutcome(CHECK_NAME, ok, summary, problems[:20], [Finding(CHECK_NAME, p) for p in problems[:200]])


class StaticCheck:
    """The run's static contract check: a cached result, or a child process computing it. ``result()`` waits;
    ``close()`` stops the child if it still runs (idempotent)."""

    def __init__(self, spec: SystemSpec, work_dir: Path):
        self.spec = spec
        self.key = ""
        self.cached = False
        self.seconds = 0.0  # how long computing (or reading) the answer took
        self.waited = 0.0  # how long the run waited for it when it judged
        self._data: dict[str, Any] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._t0 = time.monotonic()
        self._work_dir = work_dir
        self._request: Path | None = None
        self._answer: Path | None = None
        self._log: Any = None

    @classmethod
    def start(cls, spec: SystemSpec, work_dir: Path) -> StaticCheck | None:
        """Begin the check (None when the system names no contracts)."""
        if not spec.contract_sources() and not spec.contract_schemas:
            return None
        self = cls(spec, work_dir)
        self.key = cache_key(spec)
        cached = cache_dir(spec) / f"contracts-{self.key}.json"
        try:
            self._data = {**json.loads(cached.read_text()), "cached": True}
            self.cached = True
            self.seconds = time.monotonic() - self._t0
            return self
        except (OSError, ValueError):
            pass
        work_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="static-check-", suffix=".json", dir=work_dir)
        os.close(fd)
        self._request, self._answer = Path(name), Path(name).with_suffix(".answer.json")
        self._request.write_text(json.dumps({
            "sources": {k: [str(p) for p in v] for k, v in spec.contract_sources().items()},
            "schemas": _schemas(spec), "accept_undecided": list(spec.accept_undecided)}))
        self._log = open(work_dir / "static-check.log", "ab")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen([sys.executable, "-m", "sagaproof.harness.session.static_check",
                                       str(self._request), str(self._answer)],
                                      stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        return self

    def result(self) -> CheckOutcome:
        """The check's outcome, waiting for the child process if it still runs."""
        t = time.monotonic()
        if self._data is None and self._proc is not None:
            code = self._proc.wait()
            self.seconds = time.monotonic() - self._t0
            try:
                self._data = json.loads(self._answer.read_text()) if self._answer else None
            except (OSError, ValueError):
                self._data = None
            if self._data is None:
                self._data = {"ok": False, "problems": [
                    f"the static contract check ended without an answer (exit code {code}); see "
                    f"{self._work_dir / 'static-check.log'}"]}
            elif self._data.get("complete"):
                try:
                    d = cache_dir(self.spec)
                    d.mkdir(parents=True, exist_ok=True)
                    tmp = d / f".contracts-{self.key}.{os.getpid()}.tmp"
                    tmp.write_text(json.dumps({"ok": self._data["ok"], "problems": self._data["problems"]}))
                    os.replace(tmp, d / f"contracts-{self.key}.json")  # whole or not at all: runs share it
                except OSError:
                    pass  # a read-only system directory: no cache, the same answer
            self.close()
        self.waited = time.monotonic() - t
        assert self._data is not None
        return _outcome(self._data)

    def timing(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 3), "cached": self.cached, "waited": round(self.waited, 3)}

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            proc.wait()
        log = self._log
        if log is not None:
            log.close()
            self._log = None
        for p in (self._request, self._answer):
            if p is not None:
                p.unlink(missing_ok=True)


def _main(request: str, answer: str) -> int:
    """In the child: load the contracts, check them, write {"ok", "problems", "complete"} to ``answer``."""
    import threading

    parent = os.getppid()

    def orphaned() -> None:  # the run that started this check is gone: so is the check
        while True:
            if os.getppid() != parent:
                os._exit(1)
            time.sleep(0.5)

    threading.Thread(target=orphaned, daemon=True).start()
    from sagaproof import contracts

    req = json.loads(Path(request).read_text())
    schemas = [contracts.SubjectSchema(subject=s["subject"], schema_path=s["schema"],
                                       producers=s["producers"], consumers=s["consumers"])
               for s in req["schemas"]]
    try:
        cs = contracts.load(req["sources"], schemas)
        report = contracts.check(cs, accept_undecided=req.get("accept_undecided", []))
    except contracts.ContractsError as exc:
        Path(answer).write_text(json.dumps({"ok": False, "problems": [str(exc)], "complete": False}))
        return 0
    problems = [f"{p.subject}: {p.message}" for p in report.errors]
    Path(answer).write_text(json.dumps({"ok": report.ok, "problems": problems, "complete": True}))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1], sys.argv[2]))
