# Everything a fresh machine needs, from a Python >= 3.11 on the PATH.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test check format bench clean chromium

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

## Debian's Chromium, which the dashboard's browser tests drive: installed when missing if
## this runs as root with apt-get; otherwise those tests fail saying how to get it (or
## DBOS_TYPED_SKIP_BROWSER_TESTS=1 skips them).
CHROMIUM ?= $(or $(DBOS_TYPED_CHROMIUM),/usr/bin/chromium)
chromium:
	@if [ -x "$(CHROMIUM)" ] || [ "$$DBOS_TYPED_SKIP_BROWSER_TESTS" = 1 ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing Debian's chromium for the browser tests (once; under a minute)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "no Chromium at $(CHROMIUM): the browser tests will fail;" \
			"install it (apt-get install chromium) or set DBOS_TYPED_SKIP_BROWSER_TESTS=1"; \
	fi

## Run the whole test suite on SQLite and Postgres (it starts its own Postgres unless
## DBOS_TYPED_TEST_DATABASE_URL names one).
test: $(VENV)/.installed-dev chromium
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
