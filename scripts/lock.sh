#!/usr/bin/env bash
# `make lock`: resolve the Python packages into the committed lock files under requirements/
# with pip-tools, run from a clean temporary virtual environment (README, "Locked environment").
#   requirements/lock.txt           everything: both packages, every extra (make test, make up)
#   requirements/api.txt            the service alone, no PyTorch (the Dockerfile's api image)
#   requirements/worker.txt         the service and the `worker` extra (the worker image)
#   requirements/client-lowest.txt  the client at the lowest versions client/pyproject.toml allows
# The subsets are resolved under lock.txt as a constraint, so they carry the same versions.
# Packages already pinned keep their version unless UPGRADE=1 (then everything is resolved anew).
# tests/test_lock.py checks the result against the pyproject files.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
PIP_TOOLS=(pip==26.3 pip-tools==7.7.0)

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/pip" install -q "${PIP_TOOLS[@]}"

upgrade=()
[ "${UPGRADE:-0}" = 1 ] && upgrade=(--upgrade)
compile() {  # compile OUTPUT [pip-compile arguments and sources...]
  local output=$1
  shift
  echo "resolving $output"
  CUSTOM_COMPILE_COMMAND="make lock" "$work/venv/bin/pip-compile" --quiet --generate-hashes \
    --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
    --output-file "$output" "$@"
}

compile requirements/lock.txt "${upgrade[@]}" --all-extras \
  pyproject.toml client/pyproject.toml requirements/lock.in requirements/build.in
compile requirements/api.txt --constraint requirements/lock.txt \
  pyproject.toml client/pyproject.toml requirements/build.in
compile requirements/worker.txt --constraint requirements/lock.txt --extra worker \
  pyproject.toml client/pyproject.toml requirements/build.in

# The client's own dependencies at their floors (`numpy>=1.24` -> numpy==1.24.0) and the test
# runner at its locked version (written to client-lowest.in, which is committed with the lock).
"$work/venv/bin/python" scripts/client_floors.py > requirements/client-lowest.in
compile requirements/client-lowest.txt "${upgrade[@]}" requirements/client-lowest.in
