"""sagaproof harness: the conductor of a run.

Modules:
    harness.config          the system file (sagaproof.toml) loaded into validated dataclasses
    harness.system          NATS + fault proxies + service processes, up and torn down as one (`System`)
    harness.nats_server     embedded nats-server / 3-node cluster
    harness.process         OS processes in their own groups, with log files and escalating stops
    harness.reaper          the watchdog that kills what the harness started if the harness dies
    harness.recorder        the lossless, contract-validating event recorder (events.jsonl)
    harness.workload        saga starts at a rate, over HTTP or NATS
    harness.chaos_control   per-service fault proxies, `system.chaos`, the nemesis wiring
    harness.runner          `sagaproof run`: the whole job, as an engine emitting typed events
    harness.checker         the saga checker over the recorded history
    harness.report          report.json, junit.xml, report.html
    harness.cli             the `sagaproof` command; harness.pytest_plugin the pytest fixtures

`harness` uses `contracts` and `chaos`; neither of those imports `harness`.
"""
