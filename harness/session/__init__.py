"""The engine of one run: the session, the recorder, the workload, the nemesis wiring, quiescence,
shrinking, replay and sharded runs. It starts the environment (:mod:`harness.env`), emits typed events
(:mod:`harness.events`) and writes the history; checks and reports are functions it calls.
"""
