"""sagaproof harness: the conductor of a run.

Modules:
    harness.config          the system file (sagaproof.toml) loaded into validated dataclasses
    harness.errors          the exception tree, exit codes, and the one boundary to contracts and chaos
    harness.events          the engine's typed events (which, serialised, are the history)
    harness.history         the history: events streamed to events.jsonl, read back as a stream
    harness.findings        every check's failures, as one family
    harness.system          the environment: NATS + fault proxies + service processes, up and down (`System`)
    harness.nats_server     embedded nats-server / 3-node cluster
    harness.process         OS processes in their own groups, with log files and escalating stops
    harness.wait            `eventually`: wait for a condition, bounded
    harness.reaper          the watchdog that kills what the harness started if the harness dies
    harness.recorder        the lossless, contract-validating event recorder (survives broker restarts)
    harness.workload        saga starts at a rate, over HTTP or NATS
    harness.links           per-service fault proxies (links) and `system.chaos`, the test fault API
    harness.nemesis         the run's seeded fault schedule carried out; attach mode's fault menu
    harness.session         the engine of one run (`Session`) and the pytest handle (`SessionHandle`)
    harness.checks          the checks of a run: functions over the history, one registered list
    harness.checker         the saga checker over the recorded history
    harness.replay          `sagaproof replay`: the options that re-run a recorded run exactly
    harness.runner          `sagaproof run` as a function (the session's), for earlier callers
    harness.report_glue     shrinking a failing fault schedule
    harness.report          report.json, junit.xml, report.html (a consumer of the engine's events)
    harness.cli             the `sagaproof` command; harness.pytest_plugin the pytest fixtures (thin front-ends)

`harness` uses `contracts` and `chaos`; neither of those imports `harness`.
"""
