"""The shop's seeded bugs (SHOP_BUG=<name>) and the check a harness must name first for each.

The README's bug table explains the fault that makes each one show; this mapping is what the end-to-end
tests and benchmarks/acceptance.py hold `sagaproof run` to.
"""

EXPECTED_FIRST = {
    "no_refund": "consumption",
    "double_charge": "no_double_effect",
    "ack_before_commit": "termination",
    "lost_terminal": "delivery guarantee",
    "early_complete": "no_contradiction",
    "field_rename": "live contract conformance",
    "lost_status": "read_final_agrees",
    "no_reconnect": "consumption",
}

# In attach mode (services deployed elsewhere, reaching NATS through the team's own proxies) the harness cannot
# read the services' own NATS connections, so the consumption and delivery checks have no link to judge by;
# the saga checks catch these two bugs there, as they did before the broker view.
EXPECTED_FIRST_WITHOUT_LINKS = {**EXPECTED_FIRST, "no_refund": "compensation_completeness",
                                "lost_terminal": "termination", "no_reconnect": "termination"}
