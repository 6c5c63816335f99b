"""sagaproof harness package."""
