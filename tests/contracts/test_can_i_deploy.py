"""`sagaproof contracts record-deployment` and `can-i-deploy` on a git repository made by the test
(deploy_testkit: three versions of a producer, two of a consumer, deployments recorded to prod and staging).

prod:    order c1 (v1), payment c1 (v1)
staging: order c2 (v2, previous c1 = v1), payment c1 (v1)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
from deploy_testkit import ORDER, STR, git, make_repo, pact, sagaproof, write

from tests.conftest import SAGAPROOF


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import _pytest.capture

    r = make_repo(tmp_path_factory.mktemp("deploy"))
    cap = _pytest.capture.CaptureFixture(_pytest.capture.SysCapture, None, _ispytest=True)  # module scope: no capsys
    cap._start()
    try:
        for args in (["order", "payment", "--env", "prod", "--ref", "c1"],
                     ["order", "payment", "--env", "staging", "--ref", "c1"],
                     ["order", "--env", "staging", "--ref", "c2"]):
            code, out, err = sagaproof(cap, "contracts", "record-deployment", *args, "--dir", str(r / "shop"))
            assert code == 0, out + err
    finally:
        cap.close()
    git(r, "add", "-A")
    git(r, "commit", "-qm", "deployments")
    return r


def sha(repo: Path, ref: str) -> str:
    return git(repo, "rev-parse", f"{ref}^{{commit}}")


def ask(capsys: Any, repo: Path, *args: str) -> tuple[int, dict[str, Any]]:
    code, out, err = sagaproof(capsys, "contracts", "can-i-deploy", *args, "--dir", str(repo / "shop"), "--json")
    assert code in (0, 1), out + err
    return code, json.loads(out)


def rows(matrix: dict[str, Any], **match: str) -> list[dict[str, Any]]:
    return [r for r in matrix["matrix"] if all(r[k] == v for k, v in match.items())]


# ---------------------------------------------------------------------------- record-deployment


def test_recorded_files_hold_current_and_previous_commit(repo: Path) -> None:
    staging = tomllib.loads((repo / "shop" / "deployments" / "staging.toml").read_text())["services"]
    assert staging["order"]["ref"] == sha(repo, "c2") and staging["order"]["previous"] == sha(repo, "c1")
    assert staging["payment"]["ref"] == sha(repo, "c1") and "previous" not in staging["payment"]
    prod = tomllib.loads((repo / "shop" / "deployments" / "prod.toml").read_text())["services"]
    assert {s: d["ref"] for s, d in prod.items()} == {"order": sha(repo, "c1"), "payment": sha(repo, "c1")}


def test_recording_the_same_commit_again_keeps_previous_and_undeploy_removes(repo: Path, tmp_path: Path,
                                                                            capsys: Any) -> None:
    d = tmp_path / "deployments"
    shop = str(repo / "shop")
    for ref in ("c1", "c2", "c2"):
        code, out, err = sagaproof(capsys, "contracts", "record-deployment", "order", "--env", "qa", "--ref", ref,
                                   "--dir", shop, "--deployments", str(d))
        assert code == 0, out + err
    qa = tomllib.loads((d / "qa.toml").read_text())["services"]
    assert qa["order"]["ref"] == sha(repo, "c2") and qa["order"]["previous"] == sha(repo, "c1")
    assert qa["order"]["ref_name"] == "c2"
    code, out, err = sagaproof(capsys, "contracts", "record-deployment", "order", "--env", "qa", "--undeploy",
                               "--dir", shop, "--deployments", str(d))
    assert code == 0, out + err
    assert tomllib.loads((d / "qa.toml").read_text()) == {}
    code, _, err = sagaproof(capsys, "contracts", "record-deployment", "order", "--env", "qa", "--undeploy",
                             "--dir", shop, "--deployments", str(d))
    assert code == 2 and "not recorded in qa" in err


# ---------------------------------------------------------------------------- the four verdicts


def test_safe(repo: Path, capsys: Any) -> None:
    # order v2 adds a field; payment v1 in prod does not mind, and its pact still holds
    code, m = ask(capsys, repo, "order", "--ref", "c2", "--to", "prod")
    assert code == 0 and m["ok"] is True, m
    assert {(r["consumer"], r["consumer_ref"], r["producer"], r["producer_ref"], r["check"], r["verdict"])
            for r in m["matrix"]} == {
        ("payment", sha(repo, "c1"), "order", sha(repo, "c2"), "messages", "safe"),
        ("payment", sha(repo, "c1"), "order", sha(repo, "c2"), "pact", "safe"),
    }


def test_unsafe_as_producer(repo: Path, capsys: Any) -> None:
    # order v3 renames amount to total; payment v1 (in staging) requires amount, and its pact expects it
    code, m = ask(capsys, repo, "order", "--ref", "c4", "--to", "staging")
    assert code == 1 and m["ok"] is False
    (row,) = rows(m, check="messages")
    assert (row["consumer"], row["consumer_ref"], row["producer"], row["producer_ref"]) == \
        ("payment", sha(repo, "c1"), "order", sha(repo, "c4"))
    assert row["verdict"] == "unsafe" and row["channel"] == "orders.created"
    assert "amount" not in row["counterexample"] and "total" in row["counterexample"]
    assert row["consumer_path"].endswith("/required")
    (pact_row,) = rows(m, check="pact")
    assert pact_row["verdict"] == "unsafe" and "/amount" in pact_row["reason"]


def test_unsafe_as_consumer(repo: Path, capsys: Any) -> None:
    # payment v2 requires currency; order v1 (in prod) never sends it
    code, m = ask(capsys, repo, "payment", "--ref", "c3", "--to", "prod")
    assert code == 1
    (row,) = rows(m, check="messages")
    assert (row["consumer"], row["consumer_ref"], row["producer"], row["producer_ref"], row["verdict"]) == \
        ("payment", sha(repo, "c3"), "order", sha(repo, "c1"), "unsafe")
    assert "currency" not in row["counterexample"]
    assert rows(m, check="pact")[0]["verdict"] == "unsafe"


def test_unsafe_only_because_of_messages_left_by_the_previous_producer_version(repo: Path, capsys: Any) -> None:
    # staging runs order v2 (sends currency): live messages are fine; order v1 ran before it and its
    # messages, without currency, may still be in the ORDERS stream
    code, m = ask(capsys, repo, "payment", "--ref", "c3", "--to", "staging")
    assert code == 1
    unsafe = [r for r in m["matrix"] if r["verdict"] != "safe"]
    assert [(r["check"], r["producer_ref"]) for r in unsafe] == [("stored messages", sha(repo, "c1"))]
    assert "currency" not in unsafe[0]["counterexample"]
    assert rows(m, check="messages")[0]["verdict"] == "safe"
    assert rows(m, check="messages")[0]["producer_ref"] == sha(repo, "c2")


def test_stored_messages_count_only_on_subjects_a_stream_keeps(repo: Path, tmp_path: Path, capsys: Any) -> None:
    clone = tmp_path / "repo"
    shutil.copytree(repo, clone)
    toml = clone / "shop" / "sagaproof.toml"
    toml.write_text(toml.read_text().replace('subjects = ["orders.>"]', 'subjects = ["audit.>"]'))
    code, m = ask(capsys, clone, "payment", "--ref", "c3", "--to", "staging")
    assert code == 0 and not rows(m, check="stored messages"), m


def test_several_services_deployed_together(repo: Path, tmp_path: Path, capsys: Any) -> None:
    # alone, order v3 breaks payment v1 in staging; together with payment v2 the live pair is safe, and what
    # is left unsafe is only order v1's stored messages
    code, together = ask(capsys, repo, "order", "payment", "--ref", "c4", "--to", "staging")
    assert code == 1
    assert {r["check"] for r in together["matrix"] if r["verdict"] != "safe"} == {"stored messages"}
    live = rows(together, check="messages")
    assert [(r["consumer_ref"], r["producer_ref"], r["verdict"]) for r in live] == \
        [(sha(repo, "c4"), sha(repo, "c4"), "safe")]
    # the same question where nothing is stored (core NATS, no streams): safe together, unsafe alone
    clone = tmp_path / "repo"
    shutil.copytree(repo, clone)
    toml = clone / "shop" / "sagaproof.toml"
    toml.write_text(toml.read_text().split("[services.order]")[0].replace(
        '[[nats.streams]]\nname = "ORDERS"\nsubjects = ["orders.>"]\n', "") + "[services.order]" +
        toml.read_text().split("[services.order]")[1])
    assert ask(capsys, clone, "order", "payment", "--ref", "c4", "--to", "staging")[0] == 0
    assert ask(capsys, clone, "order", "--ref", "c4", "--to", "staging")[0] == 1


def test_work_tree_is_the_default_candidate(repo: Path, tmp_path: Path, capsys: Any) -> None:
    clone = tmp_path / "repo"
    shutil.copytree(repo, clone)
    write(clone / "shop" / "contracts" / "order.yaml", ORDER[1])  # back to v1: fine with payment v1 in prod
    code, m = ask(capsys, clone, "order", "--to", "prod")
    assert code == 0 and {r["producer_ref"] for r in m["matrix"]} == {"work tree"}


def test_a_producer_that_stops_sending_what_a_running_consumer_receives(repo: Path, tmp_path: Path,
                                                                        capsys: Any) -> None:
    clone = tmp_path / "repo"
    shutil.copytree(repo, clone)
    doc = dict(ORDER[1])
    doc["channels"] = {"created": {**doc["channels"]["created"], "address": "orders.placed"}}
    write(clone / "shop" / "contracts" / "order.yaml", doc)
    code, m = ask(capsys, clone, "order", "--to", "prod")
    assert code == 1
    (row,) = rows(m, check="no longer sent")
    assert row["consumer"] == "payment" and row["channel"] == "orders.created" and row["verdict"] == "unsafe"


def test_matrix_table_output(repo: Path, capsys: Any) -> None:
    code, out, err = sagaproof(capsys, "contracts", "can-i-deploy", "payment", "--ref", "c3", "--to", "staging",
                               "--dir", str(repo / "shop"))
    assert code == 1, out + err
    for text in ("Can I deploy to staging?", "stored messages", "unsafe", sha(repo, "c1")[:7],
                 "NOT safe to deploy payment", "may have left OrderCreated in a stream"):
        assert text in out, out


# ---------------------------------------------------------------------------- pacts


def test_pact_message_with_a_key_the_provider_does_not_declare_is_unsafe(repo: Path, tmp_path: Path,
                                                                          capsys: Any) -> None:
    clone = tmp_path / "repo"
    shutil.copytree(repo, clone)
    # payment's pact (in the work tree) now expects loyalty_points, which no version of order declares
    write(clone / "shop" / "contracts" / "pacts" / "payment-order.json",
          pact("payment", "order", {"order_id": "o-1", "currency": "EUR", "loyalty_points": 3}))
    code, m = ask(capsys, clone, "payment", "--to", "staging")
    (row,) = rows(m, check="pact")
    assert code == 1 and row["verdict"] == "unsafe" and "/loyalty_points" in row["reason"]
    # a pact that leaves out fields the provider requires is fine: a pact names only what its consumer needs
    write(clone / "shop" / "contracts" / "pacts" / "payment-order.json", pact("payment", "order", {"currency": "EUR"}))
    (row,) = rows(ask(capsys, clone, "payment", "--to", "staging")[1], check="pact")
    assert row["verdict"] == "safe", row
    # a pact on a subject the provider does not send on
    write(clone / "shop" / "contracts" / "pacts" / "payment-order.json",
          pact("payment", "order", {"currency": "EUR"}, subject="orders.refunded"))
    (row,) = rows(ask(capsys, clone, "payment", "--to", "staging")[1], check="pact")
    assert row["verdict"] == "unsafe" and "does not send on orders.refunded" in row["reason"]


# ---------------------------------------------------------------------------- peers from elsewhere


@pytest.fixture(scope="module")
def peer_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another team's repository: shipping receives orders.created and needs amount (tag 'live')."""
    from deploy_testkit import INT, STR, doc

    r = tmp_path_factory.mktemp("peer") / "shipping-repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    write(r / "contracts" / "shipping.yaml",
          doc("shipping", "receive", {"order_id": STR, "amount": INT}, ["order_id", "amount"]))
    git(r, "add", "-A")
    git(r, "commit", "-qm", "shipping")
    git(r, "tag", "live")
    return r


@pytest.mark.parametrize("form", ["path@ref", "file-url@ref", "directory"])
def test_peer_contracts_from_another_repository(repo: Path, peer_repo: Path, form: str, capsys: Any) -> None:
    loc = {"path@ref": f"{peer_repo}@live", "file-url@ref": f"file://{peer_repo}@live",
           "directory": str(peer_repo / "contracts")}[form]
    code, m = ask(capsys, repo, "order", "--ref", "c2", "--to", "prod", "--peer-contracts", f"shipping={loc}")
    assert code == 0 and rows(m, consumer="shipping")[0]["verdict"] == "safe", m
    code, m = ask(capsys, repo, "order", "--ref", "c4", "--to", "prod", "--peer-contracts", f"shipping={loc}")
    (row,) = rows(m, consumer="shipping")
    assert code == 1 and row["verdict"] == "unsafe" and "amount" in row["reason"]


# ---------------------------------------------------------------------------- bad input: one sentence, exit 2


def _cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """The real command, as a user or a deploy job runs it."""
    return subprocess.run([*SAGAPROOF, "contracts", *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _assert_one_sentence(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for n in needles:
        assert n in proc.stderr, proc.stderr


def test_a_bad_input_through_the_real_command_is_one_sentence_and_exit_2(repo: Path) -> None:
    # One row through a subprocess (what a user sees: exit status, stderr, no traceback; tests/test_bad_inputs.py
    # has more, record-deployment's among them); the rest of the table runs the same CLI main in this process
    # (below), where an exception that escapes fails the test just the same.
    shop = str(repo / "shop")
    _assert_one_sentence(_cli("can-i-deploy", "billing", "--to", "prod", "--dir", shop), "billing", "order, payment")


def test_bad_inputs_are_one_sentence_and_exit_2(repo: Path, peer_repo: Path, tmp_path: Path, capsys: Any) -> None:
    def _cli(*args: str) -> subprocess.CompletedProcess[str]:  # the CLI's main in this process (a subprocess is
        code, out, err = sagaproof(capsys, "contracts", *args)  # ~4 s of start-up per row on a busy machine)
        return subprocess.CompletedProcess(["sagaproof", "contracts", *args], code, out, err)

    shop = str(repo / "shop")
    _assert_one_sentence(_cli("can-i-deploy", "billing", "--to", "prod", "--dir", shop),
                         "billing", "order, payment")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "qa", "--dir", shop), "'qa'", "prod, staging")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--ref", "no-such-ref", "--to", "prod", "--dir", shop),
                         "no-such-ref")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--ref", "c0", "--to", "prod", "--dir", shop),
                         "order", "c0")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "../etc", "--dir", shop), "environment name")
    _assert_one_sentence(_cli("record-deployment", "order", "--env", "prod", "--ref", "nope", "--dir", shop), "nope")
    _assert_one_sentence(_cli("record-deployment", "billing", "--env", "prod", "--dir", shop), "billing")
    _assert_one_sentence(_cli("record-deployment", "order", "--env", "prod", "--ref", "c0", "--dir", shop),
                         "no contract", "c0")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop,
                              "--peer-contracts", "shipping"), "NAME=PATH_OR_GIT_URL@REF")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop,
                              "--peer-contracts", "shipping=https://git.example.invalid/shipping.git"), "needs the ref")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop,
                              "--peer-contracts", f"order={peer_repo}@live"), "being deployed")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop,
                              "--peer-contracts", f"billing={peer_repo}@live"), "no contract of billing")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop,
                              "--peer-contracts", f"shipping={peer_repo}@nope"), "nope")
    # a deployments file that names a commit this clone does not have, or one without the service's contracts
    d = tmp_path / "deployments"
    write(d / "prod.toml", f'[services.payment]\nref = "{"ab" * 20}"\n')
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop, "--deployments", str(d)),
                         "ababab", "not in this repository")
    write(d / "prod.toml", f'[services.payment]\nref = "{sha(repo, "c0")}"\n')
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop, "--deployments", str(d)),
                         "payment", "no contract")
    write(d / "prod.toml", "[services.payment]\nref = 12\n")
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", shop, "--deployments", str(d)),
                         "ref =")
    # outside a git repository
    plain = tmp_path / "plain"
    shutil.copytree(repo / "shop", plain)
    _assert_one_sentence(_cli("can-i-deploy", "order", "--to", "prod", "--dir", str(plain)), "not in a git repository")


# ---------------------------------------------------------------------------- the engine alone


def _version(tmp_path: Path, service: str, action: str, props: dict[str, Any], required: list[str],
             ref: str = "r1") -> Any:
    from deploy_testkit import doc

    from sagaproof import contracts

    path = tmp_path / ref / f"{service}.yaml"
    write(path, doc(service, action, props, required))
    return contracts.Version(service, ref, ref, contracts.load({service: [path]}))


def test_undecided_is_not_safe(tmp_path: Path) -> None:
    from sagaproof import contracts

    # the consumer asks a pattern the producer's pattern may or may not satisfy: no proof, no counterexample
    producer = _version(tmp_path, "order", "send", {"order_id": {"type": "string", "pattern": "^[a-z]{1,12}$"}},
                        ["order_id"])
    consumer = _version(tmp_path, "payment", "receive", {"order_id": {"type": "string", "pattern": "^[a-z]+$"}},
                        ["order_id"], ref="r2")
    m = contracts.can_i_deploy([consumer], {"order": producer}, {}, environment="prod")
    (row,) = m.rows
    assert row.verdict == "undecided" and not m.ok and m.exit_code == 1
    assert "1 undecided" in m.summary()


def test_empty_environment_and_notes(tmp_path: Path) -> None:
    from sagaproof import contracts

    consumer = _version(tmp_path, "payment", "receive", {"order_id": STR}, ["order_id"])
    m = contracts.can_i_deploy([consumer], {}, {}, environment="qa")
    assert m.ok and m.rows == [] and m.exit_code == 0
    assert m.notes == ["payment r1 receives orders.created, which nothing running in qa (or deployed with it) sends"]

