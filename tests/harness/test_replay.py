"""`sagaproof replay` and what a user copies from the terminal, end to end with the real CLI.

A bug switched on by a variable exported in the shell (not --env) is replayed exactly after the variable is
gone: the replay takes the seed, the schedule as carried out and the services' inherited environment from
the report directory, writes a new report, and never touches the original. Secret-looking values are
masked and must be given again. The reproduce line and `sagaproof up`'s URLs are whole in a narrow pipe.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import MINI, SAGAPROOF, SHOP


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHOP_")}
    env.update(extra)
    return env


def test_a_bug_exported_in_the_shell_is_replayed_exactly_into_a_new_report(tmp_path: Path):
    orig = tmp_path / "a-report-directory-whose-path-is-long-enough-to-wrap-at-eighty-columns" / "orig"
    proc = subprocess.run([*SAGAPROOF, "run", str(SHOP), "--seed", "3", "--sagas", "30", "--report-dir", str(orig)],
                          env=_env(SHOP_BUG="no_refund", SHOP_API_TOKEN="s3cr3t-value", COLUMNS="80"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((orig / "report.json").read_text())
    assert report["first_failure"] == "consumption"  # payment never takes inventory.failed (examples/shop/bugs.py)
    assert f"Reproduce: sagaproof replay {orig}\n" in proc.stdout, "the reproduce line must be one whole line"
    manifest = json.loads((orig / "system.json").read_text())
    assert manifest["inherited_env"]["SHOP_BUG"] == "no_refund"
    assert manifest["inherited_env"]["SHOP_API_TOKEN"] == "***"
    assert "PATH" not in manifest["inherited_env"]
    assert not [p for p in orig.rglob("*") if p.is_file() and b"s3cr3t-value" in p.read_bytes()], "a secret leaked"
    before = {p: p.read_bytes() for p in orig.rglob("*") if p.is_file()}

    # the variables are gone from the shell now
    masked = subprocess.run([*SAGAPROOF, "replay", str(orig)], env=_env(), capture_output=True, text=True, timeout=60)
    assert masked.returncode == 2 and "Traceback" not in masked.stderr
    assert "SHOP_API_TOKEN" in masked.stderr and "masked" in masked.stderr
    same = subprocess.run([*SAGAPROOF, "replay", str(orig), "--report-dir", str(orig)], env=_env(),
                          capture_output=True, text=True, timeout=60)
    assert same.returncode == 2 and "never overwrites the original" in same.stderr

    replay = subprocess.run([*SAGAPROOF, "replay", str(orig), "--env", "SHOP_API_TOKEN=s3cr3t-value"], env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert replay.returncode == 1, replay.stdout[-3000:] + replay.stderr[-2000:]
    new = orig.parent / "orig-replay"
    again = json.loads((new / "report.json").read_text())
    assert again["first_failure"] == report["first_failure"]
    assert again["seed"] == 3 and again["options"]["replay_of"] == str(orig)
    # The random phase's faults are replayed as they were carried out; the targeted phase is replayed as its plan
    # (each window keyed by a message), and which windows fire depends on which messages arrive while it runs.
    carried_out = [f["id"] for f in report["faults"] if f["status"] == "carried out" and f.get("source") != "targeted"]
    # (listed by start: a replay starts each fault when the original did, so one that waited for its target's
    # previous fault may move down the list; the faults are the same)
    assert sorted(f["id"] for f in again["faults"] if f.get("source") != "targeted") == sorted(carried_out), \
        "the schedule as it was carried out"
    # aimed at the delivery each window took in the run (landed_nth), where it lands this time is the replay's own
    aimed = [{**{k: v for k, v in w.items() if k != "landed_nth"}, "nth": w.get("landed_nth", w["nth"])}
             for w in (report.get("coverage") or {}).get("plan") or []]
    assert [{k: v for k, v in w.items() if k != "landed_nth"} for w in (again.get("coverage") or {}).get("plan") or []] \
        == aimed
    assert f"Reproduce: sagaproof replay {new}\n" in replay.stdout
    assert {p: p.read_bytes() for p in orig.rglob("*") if p.is_file()} == before, "the original was changed"


def test_up_prints_every_url_whole_in_a_narrow_pipe(tmp_path: Path):
    proc = subprocess.Popen([*SAGAPROOF, "up", str(MINI), "--report-dir", str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env(COLUMNS="40"))
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while not any(line.startswith("NATS (direct):") for line in lines):
            assert proc.poll() is None and time.monotonic() < deadline, (lines, proc.stderr.read())
            lines.append(proc.stdout.readline().rstrip("\n"))
        manifest = json.loads((tmp_path / "system.json").read_text())
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:  # never leave it running, whatever went wrong
            proc.terminate()
            proc.communicate(timeout=60)
            raise
    assert proc.returncode == 0
    for svc in manifest["services"]:
        assert f"  url:      {svc['url']}" in lines, (svc["url"], lines)
        assert f"  nats url: {svc['nats_url']}" in lines, (svc["nats_url"], lines)
    assert not [line for line in lines if "…" in line], lines


@pytest.mark.slow
def test_a_variable_set_only_in_the_replaying_shell_does_not_reach_the_services(tmp_path: Path):
    orig = tmp_path / "orig"
    proc = subprocess.run([*SAGAPROOF, "run", str(SHOP), "--seed", "4", "--sagas", "20", "--no-chaos",
                           "--report-dir", str(orig)], env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    # The shell that replays has the bug switched on; the original run did not: the replay must not see it.
    replay = subprocess.run([*SAGAPROOF, "replay", str(orig), "--report-dir", str(tmp_path / "again")],
                            env=_env(SHOP_BUG="no_refund", UNRELATED_VAR="x"), capture_output=True, text=True,
                            timeout=300)
    assert replay.returncode == 0, replay.stdout[-3000:] + replay.stderr[-2000:]
    manifest = json.loads((tmp_path / "again" / "system.json").read_text())
    assert "SHOP_BUG" not in manifest["inherited_env"] and "UNRELATED_VAR" not in manifest["inherited_env"]


@pytest.mark.slow
def test_a_run_failed_through_a_targeted_fault_replays_the_same_way(tmp_path: Path):
    # ack_before_commit (examples/shop/bugs.py): every service acks a fetched batch before it works on it. The
    # targeted phase alone (no random faults) kills a service right after the +ACK of its n-th delivery passed
    # its link: that message is acknowledged and never acted on, so its saga never ends.
    orig = tmp_path / "orig"
    proc = subprocess.run([*SAGAPROOF, "run", str(SHOP), "--seed", "5", "--sagas", "80", "--phases", "targeted",
                           "--report-dir", str(orig)], env=_env(SHOP_BUG="ack_before_commit"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]
    report = json.loads((orig / "report.json").read_text())
    assert report["first_failure"] == "termination", proc.stdout[-3000:]
    assert {f.get("source") for f in report["faults"]} == {"targeted"}, "the random phase was off"
    cov = report["coverage"]
    assert f"{cov['summary']} (consumer x input subject x window" in proc.stdout.replace("\n", " ")
    lost = [c for c in cov["cells"] if c["window"] == "crash_after_ack" and c["exercised"]]
    assert lost and any("acknowledged before the kill" in c["outcome"] for c in lost)
    assert any(c["outcome"].startswith("failed") and "termination" in c["outcome"] for c in lost), \
        "the cell names the saga whose message was acknowledged and never acted on"
    assert "id='coverage'" in (orig / "report.html").read_text()

    replay = subprocess.run([*SAGAPROOF, "replay", str(orig)], env=_env(), capture_output=True, text=True,
                            timeout=300)
    assert replay.returncode == 1, replay.stdout[-3000:] + replay.stderr[-2000:]
    again = json.loads((orig.parent / "orig-replay" / "report.json").read_text())
    assert again["first_failure"] == "termination"
    assert again["options"]["phases"] == ["targeted"]
    landed = [{**{k: v for k, v in w.items() if k != "landed_nth"}, "nth": w.get("landed_nth", w["nth"])}
              for w in cov["plan"]]
    aimed = [{k: v for k, v in w.items() if k != "landed_nth"} for w in again["coverage"]["plan"]]
    assert aimed == landed, "the replay aims at the messages the run's windows took"
    assert {f.get("source") for f in again["faults"]} == {"targeted"}
