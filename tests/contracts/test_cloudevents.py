"""CloudEvents contracts as teams write them (examples/cloudevents): an envelope schema file composed with
``allOf`` and ``$ref`` (by relative path, by ``$id`` URI and by ``$anchor``) into per-event data schema files.
Every channel is decided, a break in a data schema file is found with a real counterexample, and ``diff``
sees a change made in a referenced file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import jsonschema_rs
import pytest

from sagaproof import contracts

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "cloudevents" / "contracts"


@pytest.fixture
def events(tmp_path: Path) -> Path:
    dst = tmp_path / "contracts"
    shutil.copytree(EXAMPLE, dst)
    return dst


def _edit(path: Path, fn) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(path.read_text())
    fn(doc)
    path.write_text(json.dumps(doc))


def test_every_channel_of_the_cloudevents_example_is_decided() -> None:
    cs = contracts.load_dir(EXAMPLE)
    booked = cs.channels["trips.booked"].producers["booking"][0].payload
    # The envelope (its own file) and the data schema (another file, itself referring to common.json by
    # relative path, by $id and by $anchor) are joined into one payload schema.
    text = json.dumps(booked)
    assert "specversion" in text and "trip_id" in text and '"^[A-Z]{3}$"' in text and "$ref" not in text
    report = contracts.check(cs)
    assert [r.verdict for r in report.rows] == ["ok", "ok", "ok"], report.to_dict()
    assert report.ok and not report.problems and report.exit_code == 0


def test_a_break_in_a_data_schema_file_is_found_with_a_counterexample(events: Path) -> None:
    def rename(doc: dict) -> None:  # the producer's data schema renames total to price
        doc["properties"]["price"] = doc["properties"].pop("total")
        doc["required"] = ["price" if r == "total" else r for r in doc["required"]]
    _edit(events / "schemas" / "trip-booked.json", rename)
    cs = contracts.load_dir(events)
    report = contracts.check(cs)
    rows = {r.subject: r.verdict for r in report.rows}
    assert rows == {"payments.captured": "ok", "trips.booked": "incompatible", "trips.cancelled": "ok"}
    (err,) = report.errors
    assert err.consumer == "billing" and err.verdict is not None and err.verdict.has_counterexample
    ex = err.verdict.counterexample
    producer = cs.channels["trips.booked"].producers["booking"][0].payload
    consumer = cs.channels["trips.booked"].consumers["billing"][0].payload
    for validator in (jsonschema_rs.validator_for(producer, validate_formats=True),
                      jsonschema.Draft202012Validator(producer, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)):
        assert validator.is_valid(ex)
    assert not jsonschema_rs.validator_for(consumer, validate_formats=True).is_valid(ex)
    assert "total" not in ex["data"]


def test_diff_sees_a_change_made_in_a_referenced_file(events: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    shutil.copytree(events, base)
    # common.json is shared by producer and consumers: a traveller's email becomes required for everyone
    # who reads the person schema (notify), but booking's data schema refers to the same file, so the
    # change is compatible; making only notify's view stricter is not.
    text = (events / "notify.yaml").read_text()
    (events / "notify.yaml").write_text(text.replace("required: [trip_id, traveller, legs]",
                                                     "required: [trip_id, traveller, legs, seat]"))
    changes = contracts.diff(contracts.load_dir(base), contracts.load_dir(events))
    breaking = [c for c in changes if c.breaking]
    assert breaking and all(c.subject == "trips.booked" and c.service == "notify" for c in breaking)
    assert any(c.compat is not None and c.compat.has_counterexample for c in breaking)
    assert not any(c.undecided for c in changes)
