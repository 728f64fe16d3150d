# timeline-ws — the two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
HOST ?= 127.0.0.1
PORT ?= 8080
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
# Lambda package target: keep in step with lambda_runtime/lambda_architecture in infra/variables.tf.
LAMBDA_PYTHON ?= 3.13
LAMBDA_ARCH ?= x86_64
# Extra packager options, e.g. --compile-with /path/to/python3.13 or --no-compile.
PACKAGE_ARGS ?=
# checkov pins old boto3/packaging and breaks pytest beside the project: it gets its own venv.
CHECKOV_VENV := .venv-checkov
CHECKOV_VERSION ?= 3.3.30
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)

.PHONY: help install js-tools run test lint redis-server chromium package checks checkov bench soak

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: $(STAMP) ## Create .venv and install the project (editable) with its dev extras

# The Python client (clients/python) is its own distribution, installed editable beside the
# server: the load tester and the tests import it from there.
$(STAMP): pyproject.toml clients/python/pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	@echo "Installing timeline-ws and its dev tools into $(VENV) (about 2 minutes the first time)"
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ./clients/python -e '.[dev]'
	@touch $(STAMP)

# tests/clients need the npm client's tooling (typescript, esbuild) from package-lock.json;
# `make run` does not, so a new user's first run needs no npm.
JS_STAMP := clients/js/node_modules/.installed-stamp
js-tools: $(JS_STAMP) ## Install the npm client's build and type-check tools (tests/clients)

$(JS_STAMP): clients/js/package.json clients/js/package-lock.json
	cd clients/js && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

run: install ## Start the local gateway (ws://127.0.0.1:8080/ws; HOST=, PORT= to change)
	$(BIN)/timeline-ws serve --host $(HOST) --port $(PORT)

redis-server: ## Make sure a redis-server binary exists (apt-get installs it when missing)
	@command -v redis-server >/dev/null || { $(SUDO) apt-get update && $(SUDO) apt-get install -y redis-server; }
	@redis-server --version

chromium: ## Make sure Debian's chromium exists for tests/browser (apt-get installs it when missing)
	@[ -x /usr/bin/chromium ] || { $(SUDO) apt-get update && $(SUDO) apt-get install -y chromium; }
	@/usr/bin/chromium --version 2>/dev/null

test: install js-tools redis-server chromium checkov ## Architecture contracts, then every test tier with coverage
	$(BIN)/lint-imports
	$(BIN)/python -m pytest --cov --cov-report=term-missing:skip-covered

lint: install ## ruff, mypy and the architecture contracts
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

bench: install redis-server ## Benchmarks: hot path, cold start, gateway under load (BENCH_ARGS=...; not in make test)
	$(BIN)/python -m tests.benchmarks.run $(BENCH_ARGS)

soak: install redis-server ## Soak under injected Redis/DynamoDB faults (SOAK_ARGS=...; not in make test, a 60 s smoke run is)
	$(BIN)/python -m tests.soak.run $(SOAK_ARGS)

package: install ## Build dist/timeline-ws-lambda.zip for Lambda (LAMBDA_PYTHON, LAMBDA_ARCH, PACKAGE_ARGS)
	$(BIN)/python infra/package_lambda.py --python-version $(LAMBDA_PYTHON) --architecture $(LAMBDA_ARCH) --output dist/timeline-ws-lambda.zip $(PACKAGE_ARGS)

checkov: $(CHECKOV_STAMP) ## Install checkov into its own virtualenv (.venv-checkov)

$(CHECKOV_STAMP):
	@[ -x $(CHECKOV_VENV)/bin/python ] || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check 'checkov==$(CHECKOV_VERSION)'
	@touch $@

checks: install checkov ## Infra and security checks only (tests/infra; make test runs them too)
	$(BIN)/python -m pytest -q tests/infra
