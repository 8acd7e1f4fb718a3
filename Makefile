# SensorHub's memory: every workflow a teammate repeats is a target here. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-stamp
INI ?= development.ini

.DEFAULT_GOAL := help
.PHONY: help install run migrate test test-postgresql lint dist bench bench-breakdown plugin docs clean lock

help: ## list the targets and what each does
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

$(INSTALLED): setup.cfg setup.py requirements/constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -e '.[testing]'
	@touch $@

install: $(INSTALLED) ## create .venv and install SensorHub with pinned dependencies

migrate: install ## create or upgrade the database of $(INI) (default development.ini)
	$(BIN)/sensorhub-admin migrate $(INI)

run: migrate ## set up everything and serve the app on http://127.0.0.1:6543 (SQLite)
	$(BIN)/pserve $(INI)

test: install ## set up everything and run the whole test suite (SQLite, or $$SENSORHUB_TEST_DATABASE_URL)
	$(BIN)/pytest -q $(PYTEST_ARGS)

test-postgresql: install ## run the suite against a throwaway PostgreSQL on loopback (Debian's package)
	.ci/with-postgresql $(MAKE) test

lint: install ## ruff: style and likely bugs
	$(BIN)/ruff check sensorhub plugins tests

dist: install ## build the sdist and wheel into dist/ (version from sensorhub/__version__.py)
	rm -rf dist build
	$(BIN)/python -m build --sdist --wheel --outdir dist .

bench: install ## load benchmarks on 127.0.0.1, with ratios against a bare WSGI baseline
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-breakdown: install ## what one request's pieces cost, in one process (no HTTP, one thread)
	$(BIN)/python -m bench.breakdown

plugin: install ## make plugin name=<name>: a new plugin from templates/plugin
	$(BIN)/python -m sensorhub.scripts.new_plugin $(name)

docs: install ## regenerate the settings reference in docs/operations.md from the code
	$(BIN)/python -m sensorhub.scripts.settings_reference --write

lock: install ## re-pin requirements/constraints.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check \
		| grep -v '^-e' > requirements/constraints.txt

clean: ## remove the venv, build output and local databases
	rm -rf $(VENV) build dist *.egg-info var .pytest_cache .ruff_cache
