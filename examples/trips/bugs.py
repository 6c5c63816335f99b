"""The trip bookings' seeded bugs (TRIPS_BUG=<name>) and the check a harness must name first for each.

The README's bug table explains the fault that makes each one show; this mapping is what the end-to-end
tests and benchmarks/acceptance.py hold `sagaproof run` to.
"""

EXPECTED_FIRST = {
    "early_confirm": "no_contradiction",
    "early_hold": "consumption",
    "lost_release": "compensation_completeness",
    "retry_new_key": "invariant money_conserved",
    "lost_while_away": "delivery guarantee",
    "status_flip": "read_terminal_stable",
    "ack_before_commit": "termination",
    "double_screen": "no_double_effect",
    "no_reconnect": "consumption",
}
