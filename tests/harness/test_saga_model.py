"""The saga model at load time: mistakes are caught when the system file is read (one sentence naming the key
and the fix, exit 2), a legitimate double role loads, and the shared [env] table reaches every service."""

from __future__ import annotations

import subprocess
import textwrap
from pathlib import Path

import pytest
from sagaproof.harness.config import field_at, load_system_file
from sagaproof.harness.errors import ConfigError

from tests.conftest import SAGAPROOF

SERVICES = """
[services.order]
command = ["{python}", "svc.py"]
contracts = ["order.yaml"]

[services.payment]
command = ["{python}", "svc.py"]
contracts = ["payment.yaml"]
"""

SAGA = """
[sagas.checkout]
key = "order_id"
start = "orders.created"
success = ["orders.completed"]
abort = ["orders.cancelled", "payments.refunded"]

[[sagas.checkout.steps]]
name = "charge"
service = "payment"
success = "payments.completed"
failure = "payments.failed"
compensation = "payments.refunded"
"""


def asyncapi(title: str, sends: list[str], receives: list[str] = ()) -> str:
    channels, operations = [], []
    for i, subject in enumerate([*sends, *receives]):
        channels.append(f"  c{i}:\n    address: {subject}\n    messages:\n      m{i}:\n        payload:\n"
                        f"          type: object\n          x-owner: team-{title}\n")
        action = "send" if i < len(sends) else "receive"
        operations.append(f"  op{i}:\n    action: {action}\n    channel:\n      $ref: '#/channels/c{i}'\n")
    return (f"asyncapi: 3.0.0\ninfo:\n  title: {title}\n  version: 1.0.0\nchannels:\n" + "".join(channels)
            + "operations:\n" + "".join(operations))


def write(tmp_path: Path, toml: str, *, order_sends: list[str] | None = None,
          payment_sends: list[str] | None = None) -> Path:
    (tmp_path / "svc.py").write_text("")
    (tmp_path / "order.yaml").write_text(asyncapi("order", order_sends or ["orders.created", "orders.completed",
                                                                           "orders.cancelled"]))
    (tmp_path / "payment.yaml").write_text(asyncapi("payment", payment_sends or [
        "payments.completed", "payments.failed", "payments.refunded"], ["orders.created"]))
    (tmp_path / "sagaproof.toml").write_text(textwrap.dedent(toml))
    return tmp_path


def load_error(tmp_path: Path, toml: str, **kw: list[str]) -> str:
    with pytest.raises(ConfigError) as info:
        load_system_file(write(tmp_path, toml, **kw))
    message = str(info.value)
    assert "\n" not in message.strip(), message
    return message


def test_a_compensation_that_is_also_the_terminal_event_loads(tmp_path: Path):
    spec = load_system_file(write(tmp_path, SERVICES + SAGA))
    assert spec.sagas["checkout"].abort == ("orders.cancelled", "payments.refunded")


MISTAKES = [
    # (what to change in the saga, fragment naming the key, fragment naming the fix)
    ('start = "orders.created"', 'start = "payments.completed"', "sagas.checkout: subject 'payments.completed' is both "
     "the saga's start and step 'charge' success", "give each its own subject"),
    ('success = ["orders.completed"]', 'success = ["orders.completed", "orders.cancelled"]',
     "'orders.cancelled' is both a success outcome and an abort outcome", "give each its own subject"),
    ('failure = "payments.failed"', 'failure = "payments.completed"',
     "'payments.completed' is both step 'charge' success and step 'charge' failure", "cannot tell"),
    ('compensation = "payments.refunded"', 'compensation = "payments.refunded"\nafter = ["chrge"]',
     "sagas.checkout.steps.charge.after: 'chrge' is not a step", "did you mean 'charge'"),
    ('compensation = "payments.refunded"', 'compensation = "payments.refunded"\nafter = ["charge"]',
     "sagas.checkout.steps.charge.after", "cannot come after itself"),
    ('abort = ["orders.cancelled", "payments.refunded"]', 'abort = ["orders.cancelled", "payments.refunded"]\n'
     'compensation_order = "backwards"', "sagas.checkout.compensation_order", 'must be "any"'),
    ('key = "order_id"', 'key = "data..order_id"', "sagas.checkout.key", "dotted path"),
]


@pytest.mark.parametrize("old,new,where,fix", MISTAKES, ids=[m[2][:40] for m in MISTAKES])
def test_model_mistakes_are_caught_at_load(tmp_path: Path, old: str, new: str, where: str, fix: str):
    message = load_error(tmp_path, SERVICES + SAGA.replace(old, new))
    assert where in message and fix in message


def test_steps_waiting_for_each_other_in_a_cycle(tmp_path: Path):
    saga = SAGA + """
[[sagas.checkout.steps]]
name = "ship"
service = "order"
success = "orders.completed"
after = ["charge"]
"""
    saga = saga.replace('compensation = "payments.refunded"', 'compensation = "payments.refunded"\nafter = ["ship"]')
    saga = saga.replace('success = ["orders.completed"]', 'success = ["orders.done"]')
    message = load_error(tmp_path, SERVICES + saga, order_sends=["orders.created", "orders.completed", "orders.done",
                                                                 "orders.cancelled"])
    assert "in a cycle (charge -> ship -> charge)" in message and "remove one of these 'after' entries" in message


def test_a_step_whose_service_never_sends_its_subject(tmp_path: Path):
    message = load_error(tmp_path, SERVICES + SAGA.replace('service = "payment"', 'service = "order"'))
    assert "sagas.checkout.steps.charge.service: service 'order' never sends 'payments.completed' per its contracts" \
        in message
    assert "set service = \"payment\"" in message


def test_a_saga_subject_no_contract_declares(tmp_path: Path):
    message = load_error(tmp_path, SERVICES + SAGA.replace('failure = "payments.failed"',
                                                           'failure = "payments.faild"'))
    assert "subject 'payments.faild' (step 'charge' failure) is sent by no service's contract" in message
    assert "did you mean 'payments.failed'?" in message


def test_a_subject_of_a_service_without_contracts_is_not_second_guessed(tmp_path: Path):
    toml = SERVICES + "\n[services.mailer]\ncommand = [\"{python}\", \"svc.py\"]\n" + SAGA + """
[[sagas.checkout.steps]]
name = "notify"
service = "mailer"
success = "mail.sent"
"""
    assert load_system_file(write(tmp_path, toml)).sagas["checkout"].steps[1].service == "mailer"


def test_the_cli_exits_2_on_a_model_mistake(tmp_path: Path):
    write(tmp_path, SERVICES + SAGA.replace('start = "orders.created"', 'start = "payments.completed"'))
    proc = subprocess.run([*SAGAPROOF, "run", str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and "subject 'payments.completed' is both" in proc.stderr


def test_shared_env_reaches_every_service_and_a_service_overrides_it(tmp_path: Path):
    toml = '[env]\nNATS_URL = "{nats_url}"\nLOG_LEVEL = "info"\n' + SERVICES.replace(
        'contracts = ["payment.yaml"]', 'contracts = ["payment.yaml"]\nenv = { LOG_LEVEL = "debug", PORT = "{port}" }')
    spec = load_system_file(write(tmp_path, toml))
    assert spec.services["order"].env == {"NATS_URL": "{nats_url}", "LOG_LEVEL": "info"}
    assert spec.services["payment"].env == {"NATS_URL": "{nats_url}", "LOG_LEVEL": "debug", "PORT": "{port}"}
    message = load_error(tmp_path, '[env]\nX = "{prot}"\n' + SERVICES)
    assert "env.X: unknown placeholder '{prot}'" in message


def test_keys_in_nested_fields():
    assert field_at({"data": {"order_id": "o1"}}, "data.order_id") == "o1"
    assert field_at({"data.order_id": "flat"}, "data.order_id") == "flat"
    assert field_at({"data": "not an object"}, "data.order_id") is None
    assert field_at(None, "order_id") is None
