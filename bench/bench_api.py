"""API read latency with a realistic amount of data.

Setting: a real uvicorn API process on a SQLite file (WAL) holding 1,000 runs, one of them
with 200 epoch records of realistic size (two 128-value spectra and every diagnostic).
Measures, sequentially on loopback with one keep-alive connection:
``GET /api/runs`` (the default page of 50, newest first, and a 500-run page),
``GET /api/runs/{id}`` and ``GET /api/runs/{id}/epochs`` (all 200 records).

Run from the repository root: ``python -m bench.bench_api [--requests 200]``.
Targets (README, Benchmarks): p95 <= 50 ms for the run list and for the 200 epochs.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import httpx

from backend.store import epochs as epoch_store
from backend.store import runs as run_store
from backend.store.database import Database
from bench.bench_sse_latency import fake_record, percentile
from tests.service.stack import RedisServer, ServiceStack

CONFIG = {"method": "simsiam", "dataset": "digits", "epochs": 200, "options": {}}


def fill(database_url: str, runs: int, epochs: int) -> str:
    """Store ``runs`` runs; the last one gets ``epochs`` epoch records. Returns its id."""
    db = Database(database_url)
    db.migrate()
    run_id = ""
    for _ in range(runs):
        run_id = run_store.create_run(db, {"method": "simsiam"}, CONFIG).id
    for epoch in range(epochs):
        epoch_store.record_epoch(db, run_id, fake_record(epoch))
    db.dispose()
    return run_id


def timed(client: httpx.Client, path: str, requests: int) -> list[float]:
    client.get(path).raise_for_status()  # warm-up
    durations = []
    for _ in range(requests):
        started = time.perf_counter()
        response = client.get(path)
        response.raise_for_status()
        durations.append((time.perf_counter() - started) * 1000)
    return durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        redis_server = RedisServer(workdir / "redis")
        redis_server.start()
        database_url = f"sqlite:///{workdir / 'bench.db'}"
        started = time.perf_counter()
        run_id = fill(database_url, args.runs, args.epochs)
        print(
            f"stored {args.runs} runs and {args.epochs} epochs in "
            f"{time.perf_counter() - started:.1f} s"
        )
        stack = ServiceStack(workdir, redis_server.url, database_url)
        stack.start_api()
        try:
            with httpx.Client(base_url=stack.base_url, timeout=30) as client:
                size = len(client.get(f"/api/runs/{run_id}/epochs").content)
                cases = [
                    ("GET /api/runs (50 of 1,000)", "/api/runs"),
                    ("GET /api/runs?limit=500", "/api/runs?limit=500"),
                    ("GET /api/runs/{id}", f"/api/runs/{run_id}"),
                    (
                        f"GET /api/runs/{{id}}/epochs ({args.epochs}, {size / 1e6:.1f} MB)",
                        f"/api/runs/{run_id}/epochs",
                    ),
                ]
                for label, path in cases:
                    durations = timed(client, path, args.requests)
                    print(
                        f"{label:45s} p50 {percentile(durations, 0.5):6.1f} ms  "
                        f"p95 {percentile(durations, 0.95):6.1f} ms"
                    )
        finally:
            stack.stop()
            redis_server.stop()


if __name__ == "__main__":
    main()
