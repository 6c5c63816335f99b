"""How long the contract gate takes: time per producer/consumer pair over the compatibility corpus
(tests/contracts/compat_corpus.py), and ``contracts check`` / ``contracts diff`` on a generated system of 50
services and 200 channels.

Baseline, measured in the same run: compiling the pair's two schemas with jsonschema-rs (the least any
engine that validates pays per pair). Figures are printed with the machine's load (``uptime``), since the
machine may be shared.

    .venv/bin/python benchmarks/contracts_scale.py                 # whole corpus, 50 services / 200 channels
    .venv/bin/python benchmarks/contracts_scale.py --pairs 200 --channels 100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema_rs

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "contracts"))

from compat_corpus import PAIRS  # noqa: E402
from sagaproof.contracts.compat import is_compatible  # noqa: E402
from sagaproof.contracts.model import ContractSet, Message  # noqa: E402

from sagaproof import contracts  # noqa: E402


def _load() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} {la[1]:.2f} {la[2]:.2f} on {os.cpu_count()} cores"


def corpus(n: int | None, confirm: bool) -> None:
    pairs = PAIRS[:n] if n else PAIRS
    base_t: list[float] = []
    for _, p, c, _ in pairs:
        t = time.perf_counter()
        jsonschema_rs.validator_for(json.loads(json.dumps(p)), validate_formats=True)
        jsonschema_rs.validator_for(json.loads(json.dumps(c)), validate_formats=True)
        base_t.append(time.perf_counter() - t)
    modes = [("the gates' defaults (proof, targeted search, property-based search only when unproven)",
              {"max_examples": 100, "confirm_examples": 0})]
    if confirm:
        modes.append(("plus a confirming property-based search of 20 messages on every proven pair",
                      {"max_examples": 100, "confirm_examples": 20}))
    for label, kw in modes:
        times: list[float] = []
        statuses: dict[str, int] = {}
        for _, p, c, _ in pairs:
            t = time.perf_counter()
            v = is_compatible(p, c, **kw)
            times.append(time.perf_counter() - t)
            statuses[v.status] = statuses.get(v.status, 0) + 1
        mean, med = statistics.mean(times), statistics.median(times)
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        print(f"corpus, {label}: {len(pairs)} pairs in {sum(times):.1f} s; per pair mean {mean * 1e3:.1f} ms, "
              f"median {med * 1e3:.1f} ms, p95 {p95 * 1e3:.1f} ms, max {max(times) * 1e3:.0f} ms; verdicts {statuses}; "
              f"undecided {100 * statuses.get('unknown', 0) / len(pairs):.1f}%")
        print(f"  vs baseline (compile both schemas, mean {statistics.mean(base_t) * 1e3:.2f} ms): "
              f"{mean / statistics.mean(base_t):.0f}x")


def _event(rng: random.Random, i: int) -> dict[str, Any]:
    props: dict[str, Any] = {"id": {"type": "string", "format": "uuid"}, "at": {"type": "string", "format": "date-time"}}
    kinds = [{"type": "integer", "minimum": 0}, {"type": "string", "maxLength": 40},
             {"enum": ["a", "b", "c"]}, {"type": "array", "items": {"type": "string"}, "maxItems": 5},
             {"type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"},
                                                                       "currency": {"type": "string", "pattern": "^[A-Z]{3}$"}}},
             {"type": ["string", "null"]}, {"type": "number", "exclusiveMinimum": 0}]
    for k in range(rng.randint(3, 8)):
        props[f"f{i}_{k}"] = rng.choice(kinds)
    return {"type": "object", "required": sorted(rng.sample(sorted(props), 3)), "properties": props,
            "additionalProperties": False}


def _consumer_view(rng: random.Random, producer: dict[str, Any]) -> dict[str, Any]:
    props = {k: v for k, v in producer["properties"].items() if rng.random() < 0.7}
    return {"type": "object", "required": [r for r in producer["required"] if r in props], "properties": props}


def system(services: int, channels: int, seed: int = 7) -> tuple[ContractSet, dict[str, dict[str, Any]]]:
    rng = random.Random(seed)
    names = [f"svc{i:02d}" for i in range(services)]
    cs = ContractSet(services=names)
    schemas = {}
    for i in range(channels):
        subject = f"domain{i % 20}.event{i}"
        ch = cs.channel(subject)
        producer = _event(rng, i)
        schemas[subject] = producer
        psvc = names[i % services]
        ch.producers[psvc] = [Message(f"E{i}", producer, file=f"{psvc}.yaml", pointer=f"/e{i}")]
        ch.messages[f"E{i}"] = ch.producers[psvc][0]
        for csvc in rng.sample([n for n in names if n != psvc], 2):
            ch.consumers[csvc] = [Message(f"E{i}", _consumer_view(rng, producer), file=f"{csvc}.yaml")]
    return cs, schemas


def scale(services: int, channels: int) -> None:
    cs, _ = system(services, channels)
    pairs = sum(len(ch.producers) * len(ch.consumers) for ch in cs.channels.values())
    t = time.perf_counter()
    report = contracts.check(cs)
    dt = time.perf_counter() - t
    rows: dict[str, int] = {}
    for r in report.rows:
        rows[r.verdict] = rows.get(r.verdict, 0) + 1
    print(f"check, {services} services / {channels} channels / {pairs} pairs (gate defaults): {dt:.1f} s, "
          f"{dt / pairs * 1e3:.1f} ms per pair; rows {rows}; exit {report.exit_code}")
    # diff: 10% of the producers add an optional property, 5% of the consumers require a new field.
    head, _ = system(services, channels)
    rng = random.Random(1)
    for _subject, ch in sorted(head.channels.items()):
        for msgs in ch.producers.values():
            if rng.random() < 0.10:
                m = msgs[0]
                m.payload = {**m.payload, "properties": {**m.payload["properties"], "note": {"type": "string"}}}
        for msgs in ch.consumers.values():
            if rng.random() < 0.05:
                m = msgs[0]
                m.payload = {**m.payload, "required": [*m.payload["required"], "missing_field"]}
    base, _ = system(services, channels)
    t = time.perf_counter()
    changes = contracts.diff(base, head)
    dt = time.perf_counter() - t
    print(f"diff, same system, {len(changes)} changes: {dt:.1f} s; breaking {sum(c.breaking for c in changes)}, "
          f"undecided {sum(c.undecided for c in changes)}")
    t = time.perf_counter()
    for ch in cs.channels.values():
        for pm in ch.producers.values():
            for cm in ch.consumers.values():
                jsonschema_rs.validator_for(pm[0].payload)
                jsonschema_rs.validator_for(cm[0].payload)
    base_dt = time.perf_counter() - t
    print(f"  baseline (compile every pair's two schemas): {base_dt:.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=None, help="only the first N corpus pairs (default: all)")
    ap.add_argument("--services", type=int, default=50)
    ap.add_argument("--channels", type=int, default=200)
    ap.add_argument("--confirm", action="store_true", help="also time a confirming search on every proven pair")
    args = ap.parse_args()
    print(_load())
    corpus(args.pairs, args.confirm)
    scale(args.services, args.channels)
    print(_load())


if __name__ == "__main__":
    main()
