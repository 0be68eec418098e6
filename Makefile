# The two commands of the README: `make up` runs the product, `make test` runs every test.
# Both set up what they need: the virtual environment, Python packages and Debian packages.

VENV ?= .venv
PYTHON ?= python3
# PyTorch is installed first and on its own: the pinned pair is the one this project is
# tested with (pip takes it from a local wheel cache when there is one). Any torch >= 2.4 works.
TORCH_PACKAGES ?= torch==2.14.1 torchvision==0.29.1
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: up test lint format system-deps bench zoo clean

$(STAMP): pyproject.toml client/pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH_PACKAGES)
	$(PY) -m pip install -q -e './client[lightning]' -e '.[worker,dev]'
	touch $(STAMP)

system-deps:
	scripts/install-system-deps.sh

up: $(STAMP) system-deps
	$(VENV)/bin/collapse-lab up

test: $(STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The dashboard's JavaScript, checked like the Python: ESLint (eslint.config.js), Prettier
# (.prettierrc.json, 100 columns) and tsc over the files with `// @ts-check` (tsconfig.json),
# whose API types frontend/js/types/api.d.ts are generated from the OpenAPI document. The
# tools are the exact versions of package-lock.json, installed by `npm ci` into node_modules.
NPM_STAMP := node_modules/.installed
NPM_BIN := node_modules/.bin
JS_FILES := "frontend/**/*.js" "*.js"
OPENAPI_JSON := node_modules/.cache/openapi.json
JS_TYPES := frontend/js/types/api.d.ts

.PHONY: check js-check js-format js-types
test lint check: js-check

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NPM_STAMP)

js-check: $(NPM_STAMP)
	$(NPM_BIN)/eslint --max-warnings 0 .
	$(NPM_BIN)/tsc --project tsconfig.json
	$(NPM_BIN)/prettier --check $(JS_FILES)
	$(NPM_BIN)/eslint --rule '{"max-len": ["error", {"code": 100, "ignoreUrls": true}]}' .

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
	rm -rf $(VENV) .pytest_cache .ruff_cache
