# SensorHub's memory: every workflow a teammate repeats is a target here. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed-stamp
INI ?= development.ini
# pytest's options for every run: quiet, and one worker per core (pytest-xdist).
PYTEST ?= -q -n auto
CODE := sensorhub plugins tests bench deploy clients/python

.DEFAULT_GOAL := help
.PHONY: help install run serve migrate test postgresql-pass debian-packages test-postgresql coverage lint format check dist release deploy-test bench bench-stored bench-overload bench-breakdown bench-dashboard plugin docs clean lock

help: ## list the targets and what each does
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# The sensor client (clients/python) too: its sensorhub-send lands in .venv/bin.
$(INSTALLED): setup.cfg setup.py requirements/constraints.txt clients/python/pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check \
		-c requirements/constraints.txt -e '.[testing,deploy]' -e clients/python
	@touch $@

install: $(INSTALLED) ## create .venv and install SensorHub and its sensor client (sensorhub-send)

migrate: install ## create or upgrade the database of $(INI) (default development.ini)
	$(BIN)/sensorhub-admin migrate $(INI)

run: migrate ## set up everything and serve the app on http://127.0.0.1:6543 (SQLite)
	$(BIN)/pserve $(INI)

serve: INI = production.ini
serve: migrate ## the production server (gunicorn, one worker per core) from $(INI) (production.ini)
	$(BIN)/sensorhub-serve $(INI)

test: install debian-packages ## set up everything and run the whole suite: SQLite, then PostgreSQL
	$(BIN)/pytest $(PYTEST) $(PYTEST_ARGS)
	@$(MAKE) --no-print-directory postgresql-pass

# The suite again on a throwaway PostgreSQL (skipped when the caller already chose a database).
postgresql-pass:
	@if [ -z "$$SENSORHUB_TEST_DATABASE_URL" ]; then \
		.ci/with-postgresql $(BIN)/pytest $(PYTEST) $(PYTEST_ARGS); fi

debian-packages: ## install the Debian packages the tests drive (PostgreSQL, Prometheus, wrk, nginx, Chromium, systemd)
	.ci/debian-packages

test-postgresql: install debian-packages ## run the suite against a throwaway PostgreSQL on loopback (Debian's package)
	.ci/with-postgresql $(BIN)/pytest $(PYTEST) $(PYTEST_ARGS)

coverage: export COVERAGE_FILE = $(CURDIR)/build/coverage/.coverage
coverage: install debian-packages ## the suite under branch coverage, subprocesses too; fails below the floor
	rm -rf build/coverage && mkdir -p build/coverage
	$(BIN)/coverage run -m pytest $(PYTEST) $(PYTEST_ARGS)
	$(BIN)/coverage combine --quiet
	$(BIN)/coverage html --quiet -d build/coverage/html
	@echo "HTML report: build/coverage/html/index.html"
	$(BIN)/coverage report  # fails under [coverage:report] fail_under in setup.cfg

lint: install ## ruff lint, ruff format check, mypy (strict for sensorhub/ and the client, gradual for plugins/)
	$(BIN)/ruff check $(CODE)
	$(BIN)/ruff format --check $(CODE)
	$(BIN)/mypy

format: install ## apply the project's format and ruff's safe fixes
	$(BIN)/ruff format $(CODE)
	$(BIN)/ruff check --fix $(CODE)

check: lint coverage ## before pushing: lint, format, types, the suite with its coverage floor, PostgreSQL
	@$(MAKE) --no-print-directory postgresql-pass

dist: install ## build the sdist and wheel into dist/ (version from sensorhub/__version__.py)
	rm -rf dist build
	$(BIN)/python -m build --sdist --wheel --outdir dist .

release: install ## build dist/releases/sensorhub-<version>.tar.gz: wheel, wheelhouse, pins, deploy files, checksums
	$(BIN)/python deploy/release.py

# Minutes, one process (the story is sequential): not part of `make test`; .ci/run calls it.
deploy-test: install debian-packages ## the deployment story for real: releases, Ansible, nginx, PostgreSQL, rollback
	SENSORHUB_DEPLOY_TEST=1 .ci/with-postgresql $(BIN)/pytest -p no:xdist -s -m deploy tests/deploy $(PYTEST_ARGS)

bench: install ## issue 14's targets on 127.0.0.1, PASS/FAIL, and their floors: 1 process, then 2 vs 1 (~13 min)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Two trees side by side under the same load (noise on this VM moves more between runs than most
# changes do): the work tree vs BASE, server CPU a request.
bench-compare: install ## make bench-compare BASE=<git revision>: the work tree vs BASE, side by side under load (~4 min)
	$(if $(BASE),,$(error give the revision to compare with, e.g. make bench-compare BASE=HEAD~1))
	$(BIN)/python -m bench.compare $(BASE) $(BENCH_ARGS)

# The stored pass alone: the main and scaling passes are `make bench`'s; the fill is kept.
bench-stored: install ## ingest on 10M stored events vs an empty database (fills var/bench/ once, minutes)
	$(BIN)/python -m bench --stored 10000000 --skip main,scaling --no-decoders $(BENCH_ARGS)

bench-overload: install ## sensorhub-serve offered 1-4x its in-flight limit, then SIGTERM under load
	$(BIN)/python -m bench.overload $(BENCH_ARGS)

bench-breakdown: install ## a single-event POST's budget, piece by piece, in µs (one process, one thread, no HTTP)
	$(BIN)/python -m bench.breakdown $(BENCH_ARGS)

bench-dashboard: install ## dashboard page timings on 10,000 sensors and 10M events (fills var/ once, minutes)
	$(BIN)/python -m bench.dashboard $(BENCH_ARGS)

plugin: install ## make plugin name=<name>: a new plugin from templates/plugin
	$(BIN)/python -m sensorhub.scripts.new_plugin $(name)

docs: install ## regenerate the settings reference in docs/operations.md from the code
	$(BIN)/python -m sensorhub.scripts.settings_reference --write

lock: install ## re-pin requirements/constraints.txt from the current .venv
	$(BIN)/python -m pip freeze --exclude-editable --disable-pip-version-check \
		| grep -v '^-e' > requirements/constraints.txt

clean: ## remove the venv, build output and local databases
	rm -rf $(VENV) build dist *.egg-info var .pytest_cache .ruff_cache
