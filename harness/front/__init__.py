"""The top floor: the `sagaproof` command, the pytest plugin and the contracts commands.

Each parses its input, calls the engine (:mod:`harness.session.engine`) or a floor below, and renders what comes back;
none has logic of its own. Nothing imports this floor.
"""
