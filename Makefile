# Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dev-only servers and demo stack live in devstack/, outside the package: never in the wheel.
DEVSTACK_PATH := PYTHONPATH="$(CURDIR)/devstack$${PYTHONPATH:+:$$PYTHONPATH}"

.PHONY: venv run test test-unit test-contract bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -c "import fs, fs.sshfs, psycopg, flask, schedule, pydantic; print('environment ready:', fs.__name__, psycopg.__version__)"
	touch $(STAMP)

run: $(STAMP)
	$(DEVSTACK_PATH) $(BIN)/python -m warehouse_devstack $(RUN_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

test-contract: $(STAMP)
	$(BIN)/python -m pytest -q tests/contract tests/integration $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

lint: $(STAMP)
	$(BIN)/python -m compileall -q src devstack tests

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info
