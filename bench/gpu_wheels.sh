#!/usr/bin/env bash
# Download, into .whl/, the wheels the GPU device image lacks for bench/bench_gpu.py
# (its Python is 3.12; it has torch, numpy, scipy, scikit-learn and numba already).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
download() {
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 -d .whl "$@"
}
download pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection \
  umap-learn pynndescent
ls .whl
