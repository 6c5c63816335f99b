"""sagaproof harness: the conductor of a run.

Floors, from the top down; a module imports only its own floor and the floors below it
(tests/test_layering.py enforces it, tools/floors.py laid it out):

    front/      thin front-ends: parse, call the engine, render its events
        cli             the `sagaproof` command
        pytest_plugin   the pytest fixtures and options
        contracts_cmd   `sagaproof contracts ...`
        shards_cmd      the command side of `sagaproof run --seeds` (summary, merged report)
    session/    the engine of one run
        engine          `Session` (one run, or the pytest session); `run`, `RunOptions`
        handle          `SessionHandle` (the pytest fixture's handle), `ChecksResult`, `running`
        job, options, support   the whole job of `sagaproof run`; `RunOptions` and the run's environment; the
                        engine's trackers, its contracts and `StartResult` (engine re-exports their names)
        recorder        the lossless, contract-validating event recorder (survives broker restarts)
        workload        saga starts at a rate, over HTTP or NATS
        nemesis         the seeded fault schedule carried out; attach mode's fault menu
        targeted, targeted_plan   the targeted phase: windows aimed at a message, carried out; their plan and
                        the report's coverage matrix
        quiescence      the wait for convergence after the faults heal
        shrink          shrinking a failing fault schedule
        replay          `sagaproof replay`: the options that re-run a recorded run exactly
        shards          many seeds as child runs, N at a time
        contract_runs   the contracts commands' runs (HTTP fuzzing, pact verification)
    report/     report.json, junit.xml, report.html, merged shard reports (consumers of the engine's events)
    checks/     the checks of a run, one registered list (`register_check`, `CHECKS`): functions over the history
        checker         the saga checker's pass (saga_model: the compiled model and the analysis of roles;
                        saga_verdict: the verdict, instance by instance; saga_result: CheckResult, SagaViolation)
        consumption     the broker's view: delivery guarantee, consumption, dead letters (broker_history: the
                        pass and its shards; broker_findings: what is reported; broker_summaries: the matrix)
        findings, results   every check's failures; the outcome of a check and of a run
    env/        the environment, up and down, knowing nothing of runs
        system          NATS + fault proxies + service processes (`System`)
        nats_server, process, reaper, http, aio, broker_view, attach, wait
        links           per-service fault proxies and `system.chaos`, the test fault API
    config, errors, events, history, plugins   the bottom: the system file, the exception tree and exit
                                      codes, the typed events, the history they are written to, the loading
                                      of plugins (the user's checks and fault kinds)

The public API is `sagaproof` itself (its `__all__`); these floors are internal.

`harness` uses `contracts` and `chaos`; neither of those imports `harness`.
"""
