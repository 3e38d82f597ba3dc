# Thin, documented targets. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: help install services services-stop services-status demo test lint format up down clean bench

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=/path/to/python3.11)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install the project with its dev tools (skipped when up to date)

services: ## Install (cached) and start the local servers; writes .devstack/env
	@# The servers build (system Python, stdlib only) while pip fills the virtualenv.
	@mkdir -p .devstack/logs
	@$(PYTHON) -m devstack.installers > .devstack/logs/prebuild.log 2>&1 & prebuild=$$!; \
	$(MAKE) --no-print-directory install || { kill $$prebuild 2>/dev/null; exit 1; }; \
	wait $$prebuild || true
	$(PY) -m devstack up

services-stop: ## Stop the local servers (and the worker and API, if `make up` started them)
	$(PY) -m devstack down

services-status: ## Show each local server, its pid, port and log
	$(PY) -m devstack status

up: services ## Start the servers, a worker and the API (http://127.0.0.1:8000) in the background
	$(PY) -m devstack up worker api

down: ## Stop the worker and the API (the servers keep running)
	$(PY) -m devstack down worker api

demo: up ## The main job end to end: seed, export through the API, download, verify
	$(PY) -m scripts.demo

test: services ## Run the whole test suite against the local stack
	scripts/run-tests

.PHONY: node-deps ts-client ts-check
NODE_PACKAGES := clients/typescript examples/nextjs

node-deps: install ## npm ci the TypeScript client and the Next.js example (cached outside the checkout)
	$(PY) -m devstack.node_deps $(NODE_PACKAGES)

ts-client: node-deps ## Regenerate the TypeScript client's types from the API's OpenAPI document
	$(PY) -m scripts.ts_client generate

ts-check: node-deps ## The client's types match the API; the client and the Next.js example type-check
	$(PY) -m scripts.ts_client check
	cd clients/typescript && node_modules/.bin/tsc -p tsconfig.test.json --noEmit
	cd examples/nextjs && node_modules/.bin/tsc --noEmit

.PHONY: reliability
reliability: services ## Fault injection, hostile input, isolation and load (~15 min); writes RELIABILITY.md
	$(PY) -m devstack.toxiproxy install
	RELIABILITY_FULL=1 scripts/run-tests -m reliability tests/reliability; rc=$$?; \
	$(PY) -m scripts.reliability_report && exit $$rc

bench: services ## Benchmarks on the local stack (not tests): writes bench/results/<date>.{json,md,png}
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	$(PY) -m bench $(BENCH_ARGS)

lint: install ## ruff (lint and format check) and mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy .

format: install ## Apply ruff's fixes and formatting
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: services-stop ## Stop the servers and delete local state (.devstack); the binary cache stays
	rm -rf .devstack
