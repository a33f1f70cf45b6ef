# Two commands on a fresh machine:  `make run` (serve on SQLite)  and  `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
# pytest-xdist workers; the suite is sized for the 2-core machine.
WORKERS ?= 2

.PHONY: setup run test lint bench bench-migrate bench-auth bench-faults bench-notifications bench-candidates prisma clean

$(PY_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

# Prisma's own schema validator (npm), used only by the tests.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

setup: $(PY_STAMP)

run: $(PY_STAMP)
	$(BIN)/mobility db upgrade
	$(BIN)/mobility seed
	$(BIN)/mobility serve --with-worker

test: $(PY_STAMP) $(NODE_STAMP)
	$(BIN)/pytest -n $(WORKERS) $(PYTEST_ARGS)

lint: $(PY_STAMP)
	$(BIN)/ruff check src tests bench migrations
	$(BIN)/ruff format --check src tests bench migrations

prisma: $(PY_STAMP)
	$(BIN)/mobility prisma export

# Benchmarks (PostgreSQL): each prints its figures and exits 1 when its goal is missed. Both always run.
bench: $(PY_STAMP)
	@status=0; for target in bench-migrate bench-auth bench-faults bench-notifications bench-candidates; do $(MAKE) --no-print-directory $$target || status=1; done; exit $$status

bench-migrate: $(PY_STAMP)
	$(BIN)/python bench/migrate.py

# The load generator is Debian's wrk; installed here when missing (as root, or through sudo).
bench-auth: $(PY_STAMP)
	@command -v wrk >/dev/null || { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y wrk || \
		{ $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y wrk; }; }
	$(BIN)/python bench/auth.py $(BENCH_ARGS)

# Restarts the PostgreSQL server (pg_ctlcluster, as root or through sudo): every other user of that server
# is disturbed. FAULTS_ARGS=--outage=proxy cuts a loopback proxy instead and leaves the server alone.
bench-faults: $(PY_STAMP)
	$(BIN)/python bench/faults.py $(FAULTS_ARGS)

clean:
	rm -rf $(VENV) node_modules data

# Queued e-mails delivered by 1, 2 and 4 worker processes to a local SMTP sink, beside one reused connection.
bench-notifications: $(PY_STAMP)
	$(BIN)/python bench/notifications.py $(BENCH_ARGS)

# Candidates (issue 12): the list and search against a bare FastAPI+asyncpg endpoint, and the CSV import
# against COPY; 100 tenants, 1,000,000 candidates by default (BENCH_ARGS="--candidates 20000 --tenants 20
# --import-rows 5000" for a quick run). Needs wrk, as bench-auth.
bench-candidates: $(PY_STAMP)
	@command -v wrk >/dev/null || { $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y wrk || \
		{ $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get update && $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y wrk; }; }
	$(BIN)/python bench/candidates.py $(BENCH_ARGS)
