# sagaproof: `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/ruff check sagaproof harness contracts chaos examples tests benchmarks
	$(BIN)/python -m pytest -q --durations=25

# The inner loop: everything but the whole-run end-to-end tests (the `slow` marker), in about a minute.
check: $(STAMP)
	$(BIN)/ruff check sagaproof harness contracts chaos examples tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check sagaproof harness contracts chaos examples tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf $(VENV) sagaproof-report build *.egg-info
