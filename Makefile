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

zoo: $(STAMP)
	$(VENV)/bin/collapse-lab zoo --dataset digits

bench: $(STAMP)
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) -m bench.$$(basename $$b .py) || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
