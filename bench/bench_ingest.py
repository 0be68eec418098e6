"""External runs, server side: from an epoch's upload to its record (diagnostics and
verdict) being stored and served, through the real stack (uvicorn API, Redis, the ingest
worker and a projection worker, as ``collapse-lab up`` starts them, SQLite).

A ``collapse_lab.Monitor`` logs ``--epochs`` epochs of a 2,048 x 128 float32 probe (with
labels and 512 positive pairs); for each epoch the time is measured from the ``log_epoch``
call to the record appearing in ``GET /api/runs/{id}/epochs`` (polled every 5 ms): the
client's encoding and upload, the API storing it, the queue, the worker decoding and
measuring it with the engine's code, the commit. One epoch at a time (the next is logged once
the previous one's projection is stored), so no backlog counts; the projection's own time
after the record is printed too.
The cost of ``log_epoch`` itself in the training loop is ``bench/bench_client.py``.

``--back-to-back``: then a run logging its epochs without waiting (each epoch's UMAP
projection queued behind the previous ones), on this stack and on one whose projection
worker takes the uploads alone (the arrangement before 2026-12-06): the same latency per
epoch, and the ratio of the two medians.

Run from the repository root: ``python -m bench.bench_ingest [--epochs 10]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import numpy as np
from collapse_lab import Monitor

from bench.local_stack import local_stack


def _back_to_back(ingest_worker: bool, epochs: int, rows: int, dim: int) -> list[float]:
    """Seconds from each ``log_epoch`` to its record being served, epochs logged back to back
    after a first one awaited with its projection (the worker warmed up)."""
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 10, rows)
    with (
        local_stack(workers=True, ingest_worker=ingest_worker) as stack,
        httpx.Client(base_url=stack.base_url) as client,
    ):
        monitor = Monitor(stack.base_url, name="bench-ingest-back-to-back", labels=labels)
        url = ""
        started: dict[int, float] = {}
        for epoch in range(epochs + 1):
            z = rng.standard_normal((rows, dim)).astype(np.float32) * (0.8**epoch)
            started[epoch] = time.perf_counter()
            monitor.log_epoch(epoch, z)
            url = f"/api/runs/{monitor.run_id}"
            if epoch == 0:
                while 0 not in client.get(f"{url}/projections").json()["epochs"]:
                    time.sleep(0.005)
        stored: dict[int, float] = {}
        while len(stored) < epochs:
            for record in client.get(f"{url}/epochs", params={"since": 0}).json():
                stored.setdefault(record["epoch"], time.perf_counter())
            time.sleep(0.005)
        monitor.finish()
    return [stored[e] - started[e] for e in range(1, epochs + 1)]


def _summary(values: list[float]) -> str:
    ms = sorted(1000 * t for t in values)
    return (
        f"median {statistics.median(ms):.0f} ms, p90 {ms[int(0.9 * (len(ms) - 1))]:.0f} ms, "
        f"max {ms[-1]:.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--back-to-back", action="store_true")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, args.rows)
    with local_stack(workers=True) as stack, httpx.Client(base_url=stack.base_url) as client:
        monitor = Monitor(stack.base_url, name="bench-ingest", labels=labels)
        latencies, projections = [], []
        for epoch in range(args.epochs + 1):  # epoch 0 warms the worker up: not counted
            z = rng.standard_normal((args.rows, args.dim)).astype(np.float32) * (0.8**epoch)
            views = (z[:512] + 0.1, z[:512] - 0.1)
            started = time.perf_counter()
            monitor.log_epoch(epoch, z, views=views)
            url = f"/api/runs/{monitor.run_id}"
            while not client.get(f"{url}/epochs", params={"since": epoch - 1}).json():
                time.sleep(0.005)
            recorded = time.perf_counter()
            # The projection (UMAP) runs on the same worker: wait for it, so that the next
            # epoch's ingest does not queue behind it.
            while epoch not in client.get(f"{url}/projections").json()["epochs"]:
                time.sleep(0.005)
            if epoch:
                latencies.append(recorded - started)
                projections.append(time.perf_counter() - recorded)
        monitor.finish()
    for what, values in (("upload -> verdict stored", latencies), ("-> projection", projections)):
        print(f"{what}, {args.rows} x {args.dim} float32, {len(values)} epochs: {_summary(values)}")
    if not args.back_to_back:
        return
    shared = _back_to_back(False, args.epochs, args.rows, args.dim)
    own = _back_to_back(True, args.epochs, args.rows, args.dim)
    print(f"back to back, the projection worker taking the uploads alone: {_summary(shared)}")
    print(f"back to back, with the ingest worker: {_summary(own)}")
    print(
        f"median ratio (ingest worker / projection worker alone): "
        f"{statistics.median(own) / statistics.median(shared):.2f}x"
    )


if __name__ == "__main__":
    main()
