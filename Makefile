# The two commands of the README: `make up` runs the product, `make test` runs every test.
# Both set up what they need: the virtual environment, Python packages and Debian packages.
# Python packages come from the committed lock (requirements/lock.txt, exact versions and
# hashes, written by `make lock`), so a new release of anything cannot change what is installed.

VENV ?= .venv
PYTHON ?= python3
LOCK := requirements/lock.txt
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# `make test` runs pytest on PYTEST_WORKERS processes (pytest-xdist; `make check` on
# CHECK_WORKERS, below), each test file whole on one of them (its module caches and fixtures
# built once), in the order tests/conftest.py collects them (longest first), each process
# with one PyTorch thread: the service and browser tests mostly wait on their services, so
# two processes keep both cores busy (8 min 38 s instead of 14 min 29 s for the suite here,
# README).
PYTEST_WORKERS ?= 2
# `make check`'s tests wait more than they compute (the client's against its stand-in
# server): a third process fills the idle time (89 s instead of 101 s here, README).
CHECK_WORKERS ?= 3
# PYTHONDONTWRITEBYTECODE (set on this machine) unset for pytest: its assertion rewriting and
# the project's own modules (installed editable, so not byte-compiled by pip) are then cached
# in __pycache__ (ignored by git) instead of compiled again by every process.
PYTEST = env -u PYTHONDONTWRITEBYTECODE OMP_NUM_THREADS=1 $(VENV)/bin/pytest --dist loadfile \
	--no-loadscope-reorder
PARALLEL_PYTEST = $(PYTEST) -n $(PYTEST_WORKERS)
# The project's own packages go on top of the lock without their dependencies: the lock alone
# decides every other package (tests/test_lock.py checks it satisfies the pyproject files).
LOCAL_PACKAGES := -e './client[lightning]' -e '.[worker,dev]'
# The client's tests also run against the lowest versions client/pyproject.toml allows.
LOWEST_VENV := .venv-client-lowest
LOWEST_LOCK := requirements/client-lowest.txt
LOWEST_STAMP := $(LOWEST_VENV)/.installed
# The lock is resolved for CPython 3.11 on Linux x86_64.
PYTHON_311 := $(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and \
	"requirements/ is locked for Python 3.11: run make with PYTHON=python3.11")'
# `make check`: what needs no service, no browser, no database and no long training. The two
# folders whose every test is `service` are not even collected: each process would import
# their conftests (the service stack, Playwright, schemathesis) for nothing.
CHECK_MARKERS := not slow and not browser and not postgres and not service
CHECK_IGNORES := --ignore=tests/service --ignore=tests/browser
# `make test-latest`: the newest versions pyproject allows, in a venv of their own.
LATEST_VENV ?= .venv-latest
LATEST_PYTEST_ARGS ?= -m "$(CHECK_MARKERS)"

# The set-up steps (the venvs' pip, apt, npm) do not depend on one another: they run side by
# side, apt's and npm's downloads beside pip's unpacking; each recipe's own lines stay in order.
# (set once: a sub-make shares its parent's job slots)
ifeq ($(MAKELEVEL),0)
MAKEFLAGS += --jobs=3
endif

.PHONY: up test test-pytest test-beside check python-checks test-client-lowest \
	test-client-pythons test-latest lock screenshots lint format system-deps bench zoo clean

# pip byte-compiles what it installs (45 s of the lock's 115 s here): without it, under
# PYTHONDONTWRITEBYTECODE (set on this machine) every process compiled every module it
# imported, again and again: pytest took 12 min 49 s instead of 10 min 54 s.
$(STAMP): $(LOCK) pyproject.toml client/pyproject.toml
	@$(PYTHON_311)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --require-hashes -r $(LOCK)
	$(PY) -m pip install -q --no-deps --no-build-isolation $(LOCAL_PACKAGES)
	$(PY) -m pip check
	touch $(STAMP)

$(LOWEST_STAMP): $(LOWEST_LOCK)
	@$(PYTHON_311)
	rm -rf $(LOWEST_VENV)
	$(PYTHON) -m venv $(LOWEST_VENV)
	$(LOWEST_VENV)/bin/python -m pip install -q --require-hashes -r $(LOWEST_LOCK)
	touch $(LOWEST_STAMP)

system-deps:
	scripts/install-system-deps.sh

up: $(STAMP) system-deps
	$(VENV)/bin/collapse-lab up

# pytest in front, its progress live; the Python checks and the client's lowest-versions run
# beside it (pytest leaves about a third of the two cores idle while its services start and
# its pages settle), in a make of their own that prints each whole when it ends
# (--output-sync). make runs the two side by side and fails when either fails.
test: test-pytest test-beside

test-pytest: $(STAMP) system-deps
	$(PARALLEL_PYTEST) $(PYTEST_ARGS)

test-beside: $(STAMP) $(LOWEST_STAMP)
	$(MAKE) --no-print-directory --output-sync=target python-checks test-client-lowest

# tests/client from the source folder, with numpy, httpx and pytest only (no torch, no server)
test-client-lowest: $(LOWEST_STAMP)
	$(LOWEST_VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not slow" tests/client

# tests/client on the other Pythons client/pyproject.toml allows, each that runs here, with the
# newest numpy and httpx (no lock: requirements/ is resolved for 3.11); not part of `make test`.
# Default: pyenv's 3.10, 3.12 and 3.13 where pyenv has them, else those names on PATH.
PYENV_PYTHONS := $(wildcard $(foreach v,3.10 3.12 3.13,$(HOME)/.pyenv/versions/$(v).*/bin/python))
CLIENT_PYTHONS ?= $(or $(PYENV_PYTHONS),python3.10 python3.12 python3.13)
test-client-pythons:
	scripts/test-client-pythons.sh $(CLIENT_PYTHONS)

# The time it prints covers all of `make check`: its prerequisites (the venv, system-deps, the
# JavaScript checks) run in check-steps, under the timer.
check:
	@start=$$(date +%s); $(MAKE) --no-print-directory check-steps; \
	status=$$?; echo "make check: $$(( $$(date +%s) - start )) s"; exit $$status

check-steps: $(STAMP) python-checks
	$(PYTEST) -n $(CHECK_WORKERS) -q -m "$(CHECK_MARKERS)" $(CHECK_IGNORES) $(PYTEST_ARGS)

lock:
	@$(PYTHON_311)
	PYTHON=$(PYTHON) scripts/lock.sh

# The newest releases pyproject's ranges allow (no lock), then lint, types and `make check`'s
# tests with them (LATEST_PYTEST_ARGS= runs the whole suite). Prints what differs from the lock.
test-latest:
	rm -rf $(LATEST_VENV)
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install -q --upgrade $(LOCAL_PACKAGES)
	$(LATEST_VENV)/bin/python scripts/lock_diff.py
	$(LATEST_VENV)/bin/ruff check .
	$(LATEST_VENV)/bin/ruff format --check .
	$(LATEST_VENV)/bin/lint-imports
	$(LATEST_VENV)/bin/mypy
	$(LATEST_VENV)/bin/pytest -q -p no:cacheprovider $(LATEST_PYTEST_ARGS)

# Refreshes the page screenshots of docs/screenshots/ (test runs write theirs to a temporary
# folder)
screenshots: $(STAMP) system-deps
	SCREENSHOT_DIR=docs/screenshots $(VENV)/bin/pytest -q tests/browser

# lint (ruff), formatting, import contracts (lint-imports) and types (mypy)
python-checks: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

lint: python-checks

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The dashboard's JavaScript, checked like the Python: ESLint (eslint.config.js), Prettier
# (.prettierrc.json, 100 columns) and tsc over every module of frontend/js (tsconfig.json),
# whose API types frontend/js/types/api.d.ts are generated from the OpenAPI document. The
# tools are the exact versions of package-lock.json, installed by `npm ci` into node_modules.
NPM_STAMP := node_modules/.installed
NPM_BIN := node_modules/.bin
JS_FILES := "frontend/**/*.js" "*.js"
OPENAPI_JSON := node_modules/.cache/openapi.json
JS_TYPES := frontend/js/types/api.d.ts

.PHONY: check-steps js-check js-format js-types
test-pytest lint check-steps: js-check

# npm itself is a Debian package (scripts/install-system-deps.sh): order-only, so that
# checking for it does not make the stamp out of date
$(NPM_STAMP): package.json package-lock.json | system-deps
	npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

js-check: $(NPM_STAMP)
	$(NPM_BIN)/eslint --max-warnings 0 .
	$(NPM_BIN)/tsc --project tsconfig.json
	$(NPM_BIN)/prettier --check $(JS_FILES)

js-format: $(NPM_STAMP)
	$(NPM_BIN)/prettier --write $(JS_FILES)

# The API's types from its OpenAPI document (tests/test_js_types.py fails when they are stale):
# one type per schema under its own name; a field is optional where the document says so.
js-types: $(STAMP) $(NPM_STAMP)
	mkdir -p $(dir $(OPENAPI_JSON)) $(dir $(JS_TYPES))
	$(PY) -m backend.openapi_document $(OPENAPI_JSON) > $(OPENAPI_JSON).d.ts
	$(NPM_BIN)/openapi-typescript $(OPENAPI_JSON) --root-types --root-types-no-schema-prefix \
		--root-types-keep-casing --default-non-nullable false >> $(OPENAPI_JSON).d.ts
	mv $(OPENAPI_JSON).d.ts $(JS_TYPES)

zoo: $(STAMP)
	$(VENV)/bin/collapse-lab zoo --dataset digits

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) -m bench.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf $(VENV) $(LOWEST_VENV) $(LATEST_VENV) .venv-client-py* .pytest_cache .ruff_cache
