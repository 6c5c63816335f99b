"""sagaproof harness: the conductor of a run.

Modules:
    harness.config          the system file (sagaproof.toml) loaded into validated dataclasses
    harness.errors          the exception tree, exit codes, and the one boundary to contracts and chaos
    harness.events          the engine's typed events (which, serialised, are the history)
    harness.history         the history: events streamed to events.jsonl, read back as a stream
    harness.checks.findings        every check's failures, as one family
    harness.env.system          the environment: NATS + fault proxies + service processes, up and down (`System`)
    harness.env.nats_server     embedded nats-server / 3-node cluster
    harness.env.process         OS processes in their own groups, with log files and escalating stops
    harness.env.wait            `eventually`: wait for a condition, bounded
    harness.env.reaper          the watchdog that kills what the harness started if the harness dies
    harness.session.recorder        the lossless, contract-validating event recorder (survives broker restarts)
    harness.session.workload        saga starts at a rate, over HTTP or NATS
    harness.env.links           per-service fault proxies (links) and `system.chaos`, the test fault API
    harness.session.nemesis         the run's seeded fault schedule carried out; attach mode's fault menu
    harness.session.engine         the engine of one run (`Session`) and the pytest handle (`SessionHandle`)
    harness.checks          the checks of a run: functions over the history, one registered list
    harness.checks.checker         the saga checker over the recorded history
    harness.session.replay          `sagaproof replay`: the options that re-run a recorded run exactly
    harness.session.runner          `sagaproof run` as a function (the session's), for earlier callers
    harness.session.shrink     shrinking a failing fault schedule
    harness.report          report.json, junit.xml, report.html (a consumer of the engine's events)
    harness.front.cli             the `sagaproof` command; harness.front.pytest_plugin the pytest fixtures (thin front-ends)

`harness` uses `contracts` and `chaos`; neither of those imports `harness`.
"""
