#!/usr/bin/env bash
# tests/client on other Pythons than the lock's 3.11 (client/pyproject.toml allows >=3.10):
# for each interpreter given that runs here, a venv of its own (.venv-client-pyXY) with the
# newest numpy and httpx pip finds for it, and pytest. Used by `make test-client-pythons`.
# Arguments: interpreters (names on PATH or paths). Fails when one fails or none runs.
set -euo pipefail
cd "$(dirname "$0")/.."
ran=0
for python in "$@"; do
    if ! version=$("$python" -c 'import sys; print("%d%d" % sys.version_info[:2])' 2>/dev/null); then
        echo "== $python: not found here, skipped"
        continue
    fi
    venv=".venv-client-py$version"
    echo "== $python ($("$python" --version 2>&1)) in $venv"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install -q numpy httpx pytest
    "$venv/bin/python" -c 'import numpy, httpx; print("numpy", numpy.__version__, "httpx", httpx.__version__)'
    "$venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow" tests/client
    ran=$((ran + 1))
done
if [ "$ran" -eq 0 ]; then
    echo "none of the interpreters runs here: give CLIENT_PYTHONS" >&2
    exit 1
fi
