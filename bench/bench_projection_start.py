"""A new process's first projections: numba's cache empty vs filled.

Every projection worker (and ingest, and each test process) is a new Python process; UMAP's
numba kernels are compiled in it unless numba's on-disk cache holds them
(``workers.engine.projection._umap`` switches the cache on for every kernel of umap-learn
and pynndescent). Each sample is a fresh subprocess that imports the projection module and
projects a 500 x 32 mixture twice (from scratch, then warm-started, as a run's first two
epochs are), with ``NUMBA_CACHE_DIR`` pointing at

* an empty folder: every kernel compiled (a new machine's first process);
* the folder the first sample filled: every kernel read from the cache (every later process).

Prints the median seconds of the two projections of each and their ratio. Run:
``OMP_NUM_THREADS=1 python -m bench.bench_projection_start``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

FIRST_PROJECTIONS = """
import time
import numpy as np
from workers.engine.projection import Projector
rng = np.random.default_rng(0)
z = (rng.normal(size=(10, 32))[rng.integers(0, 10, 500)] + rng.normal(size=(500, 32)))
z = z.astype(np.float32)
started = time.perf_counter()
projector = Projector(seed=0)
projector.project(z)
projector.project(z + np.float32(0.05) * rng.normal(size=z.shape).astype(np.float32))
print(time.perf_counter() - started)
"""


def first_projections_s(cache_dir: Path) -> float:
    """Seconds of a new process's first two projections, numba's cache in ``cache_dir``."""
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    root = Path(__file__).resolve().parent.parent
    output = subprocess.run(
        [sys.executable, "-c", FIRST_PROJECTIONS],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(output.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="processes of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        empty, filled = [], []
        shared = Path(work) / "shared"
        filled_once = first_projections_s(shared)  # fills the shared cache
        for repeat in range(args.repeats):
            empty.append(first_projections_s(Path(work) / f"empty-{repeat}"))
            filled.append(first_projections_s(shared))
    cold, warm = statistics.median(empty), statistics.median(filled)
    print(f"first two projections of a new process, median of {args.repeats}:")
    print(f"  numba cache empty:  {cold:6.2f} s (the process that filled it: {filled_once:.2f} s)")
    print(f"  numba cache filled: {warm:6.2f} s")
    print(f"  ratio: {cold / warm:.1f}x")


if __name__ == "__main__":
    main()
