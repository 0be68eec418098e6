"""Live-event latency: an epoch committed by the worker -> the SSE event received by viewers.

Setting: a real redis-server, a real uvicorn API process (SQLite in WAL mode), and a writer
process that does exactly what a train worker does after an epoch (``record_epoch`` in the
database, then publish on Redis) with realistic epoch records (two 128-value spectra and
every diagnostic). Viewers are SSE clients of the same run on loopback, in this process.
Latency = receive time (viewer) - commit time (writer, after the transaction committed); both
use ``time.time()`` on the same machine. Reported for 1 viewer and for 100 concurrent viewers.

Run from the repository root: ``python -m bench.bench_sse_latency [--epochs 60]``.
Targets (README, Benchmarks): p95 <= 250 ms with 1 viewer, <= 1 s with 100.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from typing import Any

import httpx

from backend.deployment import RedisNames
from backend.events import Publisher
from backend.store import epochs as epoch_store
from backend.store import runs as run_store
from backend.store.database import Database
from bench.local_stack import local_stack
from contract import EpochRecord
from tests.service.stack import ServiceStack


def fake_record(epoch: int) -> EpochRecord:
    metrics = {
        "dim": 128,
        "std_l2": 0.08,
        "std_l2_sqrt_d": 0.9,
        "effective_rank": 60.0,
        "spectrum": [-0.01 * i for i in range(128)],
        "alignment": 0.4,
        "uniformity": -3.1,
        "cos_pos": 0.8,
        "cos_rand": 0.05,
        "knn_top1": 0.8,
        "cluster_entropy": None,
        "cluster_entropy_max": None,
    }
    return EpochRecord.model_validate(
        {
            "epoch": epoch,
            "loss": -0.9,
            "lr": 0.05,
            "ema_momentum": None,
            "epoch_time_s": 2.0,
            "images_per_s": 500.0,
            "logs": {},
            "backbone": metrics,
            "projector": metrics,
            "verdict": {"kind": "healthy", "onset_epoch": None, "reason": "fine", "trend": {}},
        }
    )


def writer(
    database_url: str, redis_url: str, run_id: str, epochs: int, interval: float, commits: Any
) -> None:
    """Runs in its own process, like a worker."""
    db = Database(database_url)
    publisher = Publisher(redis_url, RedisNames.of(db).channel)
    db.on_commit = publisher.publish
    times = {}
    for epoch in range(epochs):
        epoch_store.record_epoch(db, run_id, fake_record(epoch))  # published on commit
        times[epoch] = time.time()
        time.sleep(interval)
    publisher.close()
    commits.put(times)


async def viewer(
    base_url: str, run_id: str, epochs: int, received: dict[int, float], connected: asyncio.Event
) -> None:
    timeout = httpx.Timeout(120, connect=10)
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=timeout) as client,
        client.stream("GET", f"/api/runs/{run_id}/events") as response,
    ):
        connected.set()
        event, data = None, None
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = line[5:].strip()
            elif line == "" and event == "epoch" and data is not None:
                epoch = json.loads(data)["epoch"]
                received[epoch] = time.time()
                if epoch == epochs - 1:
                    return
                event, data = None, None


def measure(stack: ServiceStack, viewers: int, epochs: int, interval: float) -> list[float]:
    db = Database(stack.database_url)
    run = run_store.create_run(
        db, {"method": "simsiam"}, {"method": "simsiam", "dataset": "digits", "epochs": epochs}
    )
    db.dispose()
    received: list[dict[int, float]] = [{} for _ in range(viewers)]

    async def main() -> dict[int, float]:
        connected = [asyncio.Event() for _ in range(viewers)]
        tasks = [
            asyncio.create_task(viewer(stack.base_url, run.id, epochs, received[i], connected[i]))
            for i in range(viewers)
        ]
        for event in connected:
            await event.wait()
        await asyncio.sleep(1.0)  # every stream has read its (empty) history
        commits: Any = multiprocessing.get_context("spawn").Queue()
        process = multiprocessing.get_context("spawn").Process(
            target=writer,
            args=(stack.database_url, stack.redis_url, run.id, epochs, interval, commits),
        )
        process.start()
        await asyncio.gather(*tasks)
        times: dict[int, float] = await asyncio.to_thread(commits.get, True, 60)
        process.join()
        return times

    commit_times = asyncio.run(main())
    return [
        (got[epoch] - commit_times[epoch]) * 1000 for got in received for epoch in range(epochs)
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between epochs")
    args = parser.parse_args()
    with local_stack(workers=False) as stack:
        print(f"{args.epochs} epochs, one every {args.interval} s; latency commit -> SSE")
        for viewers in (1, 100):
            latencies = measure(stack, viewers, args.epochs, args.interval)
            print(
                f"{viewers:4d} viewer(s): p50 {percentile(latencies, 0.5):7.1f} ms  "
                f"p95 {percentile(latencies, 0.95):7.1f} ms  "
                f"max {max(latencies):7.1f} ms  (n = {len(latencies)}, "
                f"mean {statistics.fmean(latencies):.1f} ms)"
            )


if __name__ == "__main__":
    main()
