# Two commands on a fresh machine: `make run` serves the API, `make test` proves it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint lint-sql fuzz torture model-long bench bench-smoke bench-ablation bench-compare migrate clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/medbook run

# The ERD test renders docs/ERD.md with Mermaid from the npm registry; without npm
# (a machine that has none) that one test is skipped, and CI installs npm first.
MERMAID_JS := .medbook/mermaid/package/dist/mermaid.min.js

$(MERMAID_JS):
	@if command -v npm >/dev/null; then \
	    mkdir -p .medbook/mermaid && cd .medbook/mermaid && \
	    npm pack --silent mermaid@11 >/dev/null && tar xzf mermaid-*.tgz; \
	else echo "npm not found: the Mermaid rendering test will be skipped"; fi

test: $(STAMP)
	-@$(MAKE) --no-print-directory $(MERMAID_JS)
	MEDBOOK_MERMAID_JS="$${MEDBOOK_MERMAID_JS:-$(CURDIR)/$(MERMAID_JS)}" $(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# make lint-sql: the checks DBAs run. squawk (npm squawk-cli, pinned; config in
# .squawk.toml) over every migration, and plpgsql_check over every function and
# trigger function (tools/plpgsql_check.py) on the server of
# MEDBOOK_LINT_DATABASE_URL (a superuser URL; Debian: postgresql-15-plpgsql-check).
SQUAWK_VERSION := 2.66.0
SQUAWK := .medbook/squawk/node_modules/.bin/squawk

$(SQUAWK):
	mkdir -p .medbook/squawk
	cd .medbook/squawk && npm install --silent --no-audit --no-fund --no-save squawk-cli@$(SQUAWK_VERSION)

lint-sql: $(STAMP) $(SQUAWK)
	$(SQUAWK) --config .squawk.toml db/migrations/*.sql
	$(BIN)/python tools/plpgsql_check.py

# make fuzz: the suite's schemathesis run with 20x the examples, and 1,000 random stateful
# scenarios along the document's links, then along the links schemathesis infers (several minutes).
fuzz: $(STAMP)
	MEDBOOK_SCHEMATHESIS_FUZZ=on MEDBOOK_SCHEMATHESIS_EXAMPLES=500 MEDBOOK_SCHEMATHESIS_STATEFUL_EXAMPLES=1000 $(BIN)/pytest -p no:cacheprovider tests/test_schemathesis.py

# make torture: ten minutes of multi-process concurrency torture on a private server
# (docs/OPERATIONS.md). make model-long: the model-based test with its long profile.
TORTURE_SECONDS ?= 600
TORTURE_WORKERS ?= 8
torture: $(STAMP)
	$(BIN)/python -m tests.torture --seconds $(TORTURE_SECONDS) --workers $(TORTURE_WORKERS)

model-long: $(STAMP)
	HYPOTHESIS_PROFILE=long $(BIN)/pytest -p no:cacheprovider -s tests/test_model.py

# make bench: the benchmark of docs/PERFORMANCE.md (about 15 minutes; needs wrk, which
# it installs with apt-get when run as root). bench-smoke: tiny sizes, for CI.
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python bench/run.py

bench-smoke: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --smoke

# Where a booking's time goes, and what a schema change did to it (docs/PERFORMANCE.md,
# "What a booking costs"). bench-ablation: book_slot and cancel_appointment with one
# trigger (or the event log's NOTIFY) switched off at a time, each run paired with a
# pgbench -N run (about 15 minutes). bench-compare: the schema of git revision BEFORE
# (default main) against this tree, same server, interleaved rounds (about 6 minutes).
bench-ablation: $(BENCH_STAMP)
	$(BIN)/python bench/ablation.py

BEFORE ?= main
bench-compare: $(BENCH_STAMP)
	$(BIN)/python bench/compare.py --before $(BEFORE)

migrate: $(STAMP)
	$(BIN)/medbook migrate

clean:
	rm -rf $(VENV) .medbook .pytest_cache .hypothesis
