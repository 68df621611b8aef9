# Everything a fresh machine needs, from a Python >= 3.11 on the PATH.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check format bench clean

$(BIN)/python:
	@echo "creating the virtual environment $(VENV)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-runtime: pyproject.toml | $(BIN)/python
	@echo "installing dbos_typed into $(VENV) (once; a few seconds)"
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "installing dbos_typed and its dev tools into $(VENV) (once; a minute or two)"
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed-runtime

## Run the quickstart on the embedded default (a local SQLite file; no server needed).
demo: $(VENV)/.installed-runtime
	$(BIN)/python -m examples.quickstart

## Run the whole test suite on SQLite and Postgres (it starts its own Postgres unless
## DBOS_TYPED_TEST_DATABASE_URL names one).
test: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

## Lint, format check and strict typing of the package, tests, examples and benchmarks.
check: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: $(VENV)/.installed-dev
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## Benchmarks against the official dbos package (needs a Postgres URL in DBOS_BENCH_DATABASE_URL).
bench: $(VENV)/.installed-dev
	$(BIN)/python -m benchmarks.steps

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
