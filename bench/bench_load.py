"""API throughput while 100 viewers watch a training run.

Setting: a real redis-server and uvicorn API process (SQLite in WAL mode) on loopback, 200
stored runs and one "training" run, fed by a writer process exactly as a train worker feeds
it (an epoch record every second, a progress event every 0.25 s, committed then published).
100 SSE viewers follow that run (one process), and a load process sends ``GET /api/runs``
and ``GET /api/runs/{id}/epochs`` (alternately, the run's ~30 epochs) open-loop at rising
rates, ``--seconds`` each. Latency is measured from the moment each request was due, so a
server that falls behind cannot hide it. Everything shares this machine's cores.

Prints, per rate: requests done, p50, p95 and the API's CPU time per request (the viewers'
events included); then the highest rate held with p95 <= 100 ms
and the API process's resident memory. ``--workers N`` serves the API with
``uvicorn --workers N`` instead of one process.

Run from the repository root: ``python -m bench.bench_load [--seconds 4] [--workers 1]``.
Target (README, Benchmarks): >= 200 requests/s at p95 <= 100 ms with the 100 viewers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from backend.deployment import RedisNames
from backend.events import Publisher
from backend.store import epochs as epoch_store
from backend.store import leases
from backend.store import runs as run_store
from backend.store.database import Database
from backend.store.eventlog import EventMessage
from bench.bench_sse_latency import fake_record, percentile
from bench.local_stack import local_stack
from tests.service.stack import ServiceStack, descendants

RATES = (50, 100, 150, 200, 250, 300, 400, 500, 600)
CONNECTIONS = 64  # keep-alive connections of the load generator
P95_TARGET_MS = 100.0


def fill(database_url: str, runs: int, epochs: int) -> str:
    """``runs`` stored runs and a running one with ``epochs`` records; returns its id."""
    db = Database(database_url)
    config = {"method": "simsiam", "dataset": "digits", "epochs": 500}
    for _ in range(runs):
        run_store.create_run(db, {"method": "simsiam"}, config)
    run = run_store.create_run(db, {"method": "simsiam"}, config)
    leases.claim_run(db, run.id, "bench-writer")
    for epoch in range(epochs):
        epoch_store.record_epoch(db, run.id, fake_record(epoch))
    db.dispose()
    return run.id


def writer(database_url: str, redis_url: str, run_id: str, first: int, stop: Any) -> None:
    """Like a train worker: an epoch a second, progress four times a second."""
    db = Database(database_url)
    publisher = Publisher(redis_url, RedisNames.of(db).channel)
    db.on_commit = publisher.publish
    epoch = first
    while not stop.is_set():
        for step in range(4):
            progress = {"epoch": epoch, "step": step, "steps": 4, "fraction": 0.1}
            publisher.publish([EventMessage(run_id, "progress", progress)])
            time.sleep(0.25)
        epoch_store.record_epoch(db, run_id, fake_record(epoch))  # published on commit
        epoch += 1
    publisher.close()


async def _viewer(base_url: str, run_id: str, counts: list[int], index: int) -> None:
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(600, connect=30)) as client,
        client.stream("GET", f"/api/runs/{run_id}/events") as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("event:"):
                counts[index] += 1


def viewers(base_url: str, run_id: str, count: int, ready: Any, stop: Any) -> None:
    async def main() -> None:
        counts = [0] * count
        tasks = [asyncio.create_task(_viewer(base_url, run_id, counts, i)) for i in range(count)]
        while sum(1 for c in counts if c) < count:
            await asyncio.sleep(0.2)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends GETs and reads their answers.

    Hand-written on purpose: httpx spends 1-2 ms of CPU per request, which on this 2-core
    machine made the load generator, not the API, the bottleneck; this costs a tenth of it.
    The API answers these routes with a Content-Length body, which is all it has to read."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> _Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def get(self, path: str, host: str) -> int:
        """The response's status code."""
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(":", 1) for line in header_lines if ":" in line)
        await self.reader.readexactly(int(headers["content-length"]))
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def _load(base_url: str, run_id: str, rate: int, seconds: float) -> tuple[int, list[float]]:
    paths = ["/api/runs", f"/api/runs/{run_id}/epochs"]
    host_port = urlsplit(base_url).netloc
    host, port = host_port.rsplit(":", 1)
    latencies: list[float] = []
    failures = 0
    idle: asyncio.Queue[_Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        idle.put_nowait(await _Connection.open(host, int(port)))

    async def one(index: int, due: float) -> None:
        nonlocal failures
        connection = await idle.get()  # waiting for a free connection counts as latency
        try:
            code = await connection.get(paths[index % 2], host_port)
        except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
            failures += 1
            connection.close()
            idle.put_nowait(await _Connection.open(host, int(port)))
            return
        idle.put_nowait(connection)
        if code != 200:
            failures += 1
            return
        latencies.append((time.perf_counter() - due) * 1000)

    start = time.perf_counter() + 0.1
    tasks = []
    for index in range(int(rate * seconds)):
        due = start + index / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(index, due)))
    await asyncio.gather(*tasks)
    while not idle.empty():
        idle.get_nowait().close()
    return failures, latencies


def api_cpu_s(stack: ServiceStack) -> float:
    """CPU time (user + system) spent so far by the API process and its children: unlike
    latency, contention for the cores does not inflate it."""
    assert stack.api is not None
    ticks = 0
    for pid in {stack.api.pid, *descendants(stack.api.pid)}:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def rss_mib(stack: ServiceStack) -> float:
    """Resident memory of the API process and its children (uvicorn --workers)."""
    assert stack.api is not None
    total = 0
    for pid in {stack.api.pid, *descendants(stack.api.pid)}:
        status = Path(f"/proc/{pid}/status").read_text()
        total += int(next(line.split()[1] for line in status.splitlines() if "VmRSS" in line))
    return total / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=4.0, help="per rate")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn --workers")
    parser.add_argument("--viewers", type=int, default=100)
    parser.add_argument("--rates", default=",".join(map(str, RATES)), help="requests/s, rising")
    args = parser.parse_args()
    extra = {"SSE_KEEPALIVE_S": "15", "PROGRESS_INTERVAL_S": "0.25"}
    if args.workers > 1:
        extra["WEB_CONCURRENCY"] = str(args.workers)  # uvicorn reads it as --workers
    with local_stack(workers=False, extra_env=extra) as stack:
        run_id = fill(stack.database_url, runs=200, epochs=30)
        spawn = multiprocessing.get_context("spawn")
        stop, ready = spawn.Event(), spawn.Event()
        feeder = spawn.Process(
            target=writer, args=(stack.database_url, stack.redis_url, run_id, 30, stop)
        )
        watchers = spawn.Process(
            target=viewers, args=(stack.base_url, run_id, args.viewers, ready, stop)
        )
        feeder.start()
        watchers.start()
        try:
            if not ready.wait(60):
                raise SystemExit("the viewers did not connect within 60 s")
            print(f"{args.viewers} viewers on a training run; uvicorn --workers {args.workers}")
            held = 0
            for rate in [int(r) for r in args.rates.split(",")]:
                cpu_before = api_cpu_s(stack)
                failures, latencies = asyncio.run(_load(stack.base_url, run_id, rate, args.seconds))
                cpu_ms = (api_cpu_s(stack) - cpu_before) * 1000 / max(1, len(latencies))
                p50, p95 = percentile(latencies, 0.5), percentile(latencies, 0.95)
                print(
                    f"{rate:4d} req/s: {len(latencies)} done, {failures} failed, "
                    f"p50 {p50:7.1f} ms, p95 {p95:7.1f} ms, API CPU {cpu_ms:.2f} ms/request"
                )
                if p95 > P95_TARGET_MS or failures:
                    break
                held = rate
            print(f"highest rate held at p95 <= {P95_TARGET_MS:.0f} ms: {held} req/s")
            print(f"API resident memory: {rss_mib(stack):.0f} MiB")
        finally:
            stop.set()
            feeder.join(10)
            watchers.join(30)
            for process in (feeder, watchers):
                if process.is_alive():
                    process.terminate()


if __name__ == "__main__":
    main()
