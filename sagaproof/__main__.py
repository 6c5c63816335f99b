"""``python -m sagaproof``: the same command line as the ``sagaproof`` console script."""

from sagaproof.harness.front.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
