"""sagaproof contracts package."""
