# sagaproof: `make demo` and `make test` work on a fresh machine with only Python 3.11+.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	@echo "installing sagaproof and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@$(BIN)/python -m pip install -e '.[test]' > $(VENV)/install.log 2>&1 || { tail -30 $(VENV)/install.log; exit 1; }
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

# --dist loadgroup hands out one test at a time to whichever worker is free (tests/conftest.py puts the whole runs
# first); xdist's default hands out chunks, and a worker could be left with several whole runs at the end.
# (xdist_group marks would also keep a module's tests on one worker, but pytest-xdist 3.8 does not apply them
# under pytest 9.2: it renames item._nodeid, which pytest 9.2 no longer reads.)
test: $(STAMP) typecheck
	$(BIN)/ruff check sagaproof harness contracts chaos examples tests benchmarks
	$(BIN)/python -m pytest -q -n 2 --dist loadgroup --durations=25

# The inner loop: everything but the whole-run end-to-end tests (the `slow` marker), on up to 4 cores.
check: $(STAMP) typecheck
	$(BIN)/ruff check sagaproof harness contracts chaos examples tests benchmarks
	$(BIN)/python -m pytest -q -m "not slow" -n auto --maxprocesses 4 --dist loadgroup

lint: $(STAMP) typecheck
	$(BIN)/ruff check sagaproof harness contracts chaos examples tests benchmarks
	$(BIN)/python tools/room_sizes.py

# mypy --strict over the package laid out as installed (symlinks; see pyproject.toml), then over a user project's
# use of the public API (tests/fixtures/userproject: its plugins and its pytest test), then over the examples (each on
# its own: their modules share names) with their service kit (examples/_lib) and the shop's pact tests.
typecheck: $(STAMP)
	rm -rf build/typecheck && mkdir -p build/typecheck/sagaproof
	for f in sagaproof/*.py sagaproof/py.typed; do ln -s ../../../$$f build/typecheck/sagaproof/; done
	for d in harness contracts chaos; do ln -s ../../../$$d build/typecheck/sagaproof/$$d; done
	cd build/typecheck && ../../$(BIN)/mypy --config-file ../../pyproject.toml --cache-dir ../../.mypy_cache -p sagaproof
	cd build/typecheck && MYPYPATH=. ../../$(BIN)/mypy --strict --cache-dir ../../.mypy_cache ../../tests/fixtures/userproject
	cd build/typecheck && MYPYPATH=.:../../examples/_lib:../../examples/shop:../../examples/shop/tests_pacts ../../$(BIN)/mypy --strict --cache-dir ../../.mypy_cache --explicit-package-bases ../../examples/_lib ../../examples/shop/*.py ../../examples/shop/tests_pacts
	cd build/typecheck && MYPYPATH=.:../../examples/_lib:../../examples/trips ../../$(BIN)/mypy --strict --cache-dir ../../.mypy_cache --explicit-package-bases ../../examples/trips/*.py

bench: $(STAMP)
	$(BIN)/python benchmarks/startup.py

clean:
	rm -rf $(VENV) sagaproof-report build *.egg-info
