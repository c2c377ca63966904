# Two commands on a fresh machine (python3 >= 3.11 and make): `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
# glibc gives every thread that allocates at once an arena of its own (up to 8 per core); the flow's copy threads'
# arenas added up to a peak RSS that grew with the run. Two arenas: flat (benchmarks/README.md, "flow memory").
export MALLOC_ARENA_MAX ?= 2
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# MiniStack, the second emulator of the end-to-end tests, in a venv of its own: it pins botocore exactly, and it
# runs Python Lambdas in its own interpreter, so boto3 is installed beside it (as real Lambda runtimes ship it).
MINISTACK_VENV := .venv-ministack
MINISTACK_VERSION := 1.5.33
MINISTACK_BOTO3 := 1.43.106
MINISTACK_STAMP := $(MINISTACK_VENV)/.installed-$(MINISTACK_VERSION)-$(MINISTACK_BOTO3)

# The Prefect server of `make server`, and the one `make deploy` / `make worker` use: PREFECT_API_URL from the
# environment or the active Prefect profile (`prefect config set PREFECT_API_URL=...`), else `make server`'s.
PREFECT_HOST ?= 127.0.0.1
PREFECT_PORT ?= 4200
POOL ?= region-migration
API_URL = $(BIN)/python -c 'from prefect.settings import PREFECT_API_URL as u; \
	print(u.value() or "http://$(PREFECT_HOST):$(PREFECT_PORT)/api")'

.PHONY: demo plan test lint typecheck bench blocks emulator-stop clean server deploy worker browser ministack

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

$(MINISTACK_STAMP):
	rm -rf $(MINISTACK_VENV)
	$(PY) -m venv $(MINISTACK_VENV)
	$(MINISTACK_VENV)/bin/pip install -q --upgrade pip
	$(MINISTACK_VENV)/bin/pip install -q 'ministack==$(MINISTACK_VERSION)' 'boto3==$(MINISTACK_BOTO3)'
	touch $@

## Build MiniStack's own venv (tests/e2e/test_ministack.py starts $(MINISTACK_VENV)/bin/ministack).
ministack: $(MINISTACK_STAMP)

$(VENV)/.bench: $(STAMP)
	$(BIN)/pip install -q -e '.[test,bench]'
	touch $@

## Run the migration on the embedded emulator (no AWS credentials needed).
demo: $(STAMP)
	$(BIN)/python -m flows.migrate $(ARGS)

## Print what a run would create or change; changes nothing.
plan: $(STAMP)
	$(BIN)/python -m flows.migrate --plan $(ARGS)

## Lint, type-check and run the whole test suite. The tests mostly wait on emulator servers (the suite used 1.3 of
## 2 cores on two workers), so three pytest-xdist workers (each test file on one worker, sharing its servers) cut the
## wall time from ~560 s to ~410 s on two cores.
PYTEST_WORKERS ?= 3
test: $(STAMP) $(MINISTACK_STAMP) browser
	$(BIN)/ruff check .
	@# mypy (~25 s without its cache) runs beside the tests; either one failing fails the target.
	$(BIN)/mypy config flows tasks blocks & mypy=$$!; \
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS); tests=$$?; \
	wait $$mypy && exit $$tests

## The headless browser the UI test drives: Debian's chromium + chromedriver, installed only when missing.
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		echo "installing chromium and chromium-driver (for tests/e2e/test_ui.py)"; \
		$(SUDO) apt-get update -qq && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy config flows tasks blocks

## Benchmarks against peers on a local moto server (prints medians and ratios).
bench: $(VENV)/.bench
	$(BIN)/python benchmarks/bench_move.py $(ARGS)
	$(BIN)/python benchmarks/bench_validate.py

## Register the block types and create the example blocks (credentials per region, config, SNS alert).
blocks: $(STAMP)
	$(BIN)/python -m blocks.register $(ARGS)

emulator-stop: $(STAMP)
	$(BIN)/python -m tasks.emulator stop

## Run it from the Prefect UI: `make server` (one terminal), `make deploy`, `make worker` (another terminal).
## A local Prefect server with the UI on http://$(PREFECT_HOST):$(PREFECT_PORT) (state in ~/.prefect).
server: $(STAMP)
	PREFECT_SERVER_API_HOST=$(PREFECT_HOST) PREFECT_SERVER_API_PORT=$(PREFECT_PORT) \
		PREFECT_UI_API_URL=http://$(PREFECT_HOST):$(PREFECT_PORT)/api \
		$(BIN)/prefect server start --host $(PREFECT_HOST) --port $(PREFECT_PORT)

## Create the process work pool if needed and register every deployment of deployments/prefect.yaml.
deploy: $(STAMP)
	@api="$$($(API_URL))"; export PREFECT_API_URL="$$api"; echo "Prefect API: $$api"; \
	$(BIN)/prefect work-pool inspect $(POOL) >/dev/null 2>&1 || \
		$(BIN)/prefect work-pool create $(POOL) --type process || exit 1; \
	$(BIN)/prefect --no-prompt deploy --all --prefect-file deployments/prefect.yaml

## A process worker on the pool: runs the flow runs the UI, the schedules and the API create.
worker: $(STAMP)
	@api="$$($(API_URL))"; export PREFECT_API_URL="$$api"; echo "Prefect API: $$api"; \
	exec $(BIN)/prefect worker start --pool $(POOL) --type process

clean:
	rm -rf $(VENV) $(MINISTACK_VENV) .state reports .pytest_cache .mypy_cache .ruff_cache
