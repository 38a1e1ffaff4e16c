# The two commands a newcomer needs: `make run` and `make test`.
# Both create or update .venv first (scripts/install.sh, idempotent).
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: venv run test test-fast lint bench clean-venv

venv:
	@bash scripts/install.sh

run: venv
	$(PY) scripts/main_job.py

# Tests run in parallel, one pytest-xdist worker per core (at most 4: each holds
# TensorFlow and its own TFF runtime); `PYTEST_WORKERS=0 make test` runs them in one process.
PYTEST_WORKERS ?= auto
XDIST := -n $(PYTEST_WORKERS) --maxprocesses=4 --dist=worksteal

test: venv
	$(PY) -m pytest -q $(XDIST) tests

# The fast tier: every test file's quick tests (no experiment runs), for edit-test loops.
test-fast: venv
	$(PY) -m pytest -q $(XDIST) -m "not slow" tests

lint: venv
	$(VENV)/bin/ruff check .

bench: venv
	$(PY) scripts/bench_kernels.py

clean-venv:
	rm -rf $(VENV)
