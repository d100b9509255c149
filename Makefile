# Two commands on a fresh machine: `make run` serves the API, `make test` proves it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint fuzz bench bench-smoke migrate clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/medbook run

test: $(STAMP)
	$(BIN)/pytest

lint: $(STAMP)
	$(BIN)/ruff check .

# make fuzz: the suite's schemathesis run with 20x the examples (a few minutes).
fuzz: $(STAMP)
	MEDBOOK_SCHEMATHESIS_EXAMPLES=500 $(BIN)/pytest -p no:cacheprovider tests/test_schemathesis.py

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

migrate: $(STAMP)
	$(BIN)/medbook migrate

clean:
	rm -rf $(VENV) .medbook .pytest_cache .hypothesis
