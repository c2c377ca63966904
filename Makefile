# Two commands on a fresh machine (python3 >= 3.11 and make): `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false

.PHONY: demo plan test lint typecheck bench emulator-stop clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

## Run the migration on the embedded emulator (no AWS credentials needed).
demo: $(STAMP)
	$(BIN)/python -m flows.migrate $(ARGS)

## Print what a run would create or change; changes nothing.
plan: $(STAMP)
	$(BIN)/python -m flows.migrate --plan $(ARGS)

## Lint, type-check and run the whole test suite.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy config flows tasks blocks
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy config flows tasks blocks

## Benchmarks against peers on a local moto server (prints medians and ratios).
bench: $(VENV)/.bench
	$(BIN)/python benchmarks/bench_move.py $(ARGS)

emulator-stop: $(STAMP)
	$(BIN)/python -m tasks.emulator stop

clean:
	rm -rf $(VENV) .state reports .pytest_cache .mypy_cache .ruff_cache
