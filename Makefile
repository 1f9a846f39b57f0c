# Every target creates the virtual environment it needs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The dev-only servers and demo stack live in devstack/, outside the package: never in the wheel.
DEVSTACK_PATH := PYTHONPATH="$(CURDIR)/devstack$${PYTHONPATH:+:$$PYTHONPATH}"

.PHONY: venv packages packages-run run test test-unit test-contract test-faketime soak mutation bench lint clean

# The awkward moments (local time in Europe/Rome) of make test-faketime: a Saturday, the night the
# clocks go forward, the night they go back, the last minute of the year.
FAKETIME_MOMENTS ?= 2027-03-27T11:00 2027-03-28T02:30 2027-10-31T02:30 2027-12-31T23:59

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	$(BIN)/python -c "import fs, fs.sshfs, psycopg, flask, pydantic; print('environment ready:', fs.__name__, psycopg.__version__)"
	touch $(STAMP)

# The system packages (PostgreSQL server, sshd, Chromium, vsftpd, libfaketime, make): installed
# when missing as root, else one line naming the command to run. .ci/run calls the same script.
packages:
	@scripts/ensure-system-packages test

packages-run:
	@scripts/ensure-system-packages run

run: packages-run $(STAMP)
	$(DEVSTACK_PATH) $(BIN)/python -m warehouse_devstack $(RUN_ARGS)

# axe-core for the browser tests' accessibility checks, from the npm registry at the version
# tests/browser/package-lock.json pins (node and npm come from scripts/ensure-system-packages).
AXE := tests/browser/node_modules/axe-core/axe.min.js

$(AXE): tests/browser/package.json tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
	touch $(AXE)

test: packages $(STAMP) $(AXE)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit $(PYTEST_ARGS)

test-contract: packages $(STAMP)
	$(BIN)/python -m pytest -q tests/contract tests/integration $(PYTEST_ARGS)

# At each moment: the unit suite with pytest itself under libfaketime, then every test that starts
# the service's own processes with those processes under libfaketime (PostgreSQL, the test servers
# and pytest keep the real clock; see tests/faketime.py). The moments run FAKETIME_JOBS at a time
# (their tests mostly wait on servers and timeouts); every moment runs, and any failure fails the target.
FAKETIME_JOBS ?= 2
# Make's target names cannot hold ':': 11:00 is spelled 11.00 in them.
FAKETIME_RUNS := $(foreach moment,$(FAKETIME_MOMENTS),faketime-at-$(subst :,.,$(moment)))

test-faketime: packages $(STAMP)
	@$(MAKE) --no-print-directory -k -j$(FAKETIME_JOBS) --output-sync=target $(FAKETIME_RUNS)

faketime-at-%: $(STAMP)
	@echo "test-faketime: the wall clock at $(subst .,:,$*) (Europe/Rome)"
	@status=0; \
	$(BIN)/python -m tests.faketime $(subst .,:,$*) $(BIN)/python -m pytest -q -p no:cacheprovider tests/unit $(PYTEST_ARGS) || status=1; \
	WAREHOUSE_TEST_FAKETIME=$(subst .,:,$*) $(BIN)/python -m pytest -q -p no:cacheprovider -m service_process $(PYTEST_ARGS) || status=1; \
	echo "test-faketime: $(subst .,:,$*) $$( [ $$status = 0 ] && echo passed || echo FAILED )"; exit $$status

# The model test of a day's life (tests/unit/test_day_in_the_life.py) with thousands of examples.
soak: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/test_day_in_the_life.py tests/unit/test_ledger_life.py --hypothesis-profile=soak $(PYTEST_ARGS)

# Mutation testing of the rules (pyproject.toml [tool.mutmut]) against the unit tests, niced: the
# machine is shared. `$(BIN)/mutmut results` lists the survivors, `$(BIN)/mutmut show NAME` one.
mutation: $(STAMP)
	nice -n 10 $(BIN)/mutmut run --max-children 2
	$(BIN)/mutmut results

bench: packages-run $(STAMP)
	$(BIN)/python bench/bench.py $(BENCH_ARGS)

# The house habits: ruff's lint and format check over everything, mypy --strict on the core.
lint: $(STAMP)
	$(BIN)/python -m ruff check src devstack tests bench
	$(BIN)/python -m ruff format --check src devstack tests bench
	$(BIN)/python -m mypy

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info src/*.egg-info mutants
