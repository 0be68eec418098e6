"""Offline runs and requeued jobs, through the real API (uvicorn, Redis, SQLite; no worker,
so no measuring shares the cores): the figures of README.md's cluster section.

1. ``python -m collapse_lab sync DIR URL`` (a subprocess, as on a login node, its start
   included) on a finished offline run of ``--epochs`` epochs of a ``--rows`` x ``--dim``
   float32 probe with labels (stored as float16, 0.25 MiB an epoch at 1,000 x 128): the
   whole command's time and its epochs/s, over ``--repeats`` fresh run directories, and
   the same command once more with nothing left to send (its start-up cost).
2. ``sync --follow`` (the default ``--poll``, 1 s) relaying an offline run while it is
   written: for each epoch, from its file landing in the run directory (renamed into place)
   to ``sync.json`` listing it, which the sync writes once the server has answered the
   ``PUT`` that stored it. Files and ``sync.json`` are polled every millisecond; the next
   epoch is written 0.1-1.1 s (uniform) after the last one was stored, out of step with
   the poll.
3. A requeued job: a run with a resume key logs 3 epochs and is closed as failed (a
   preempted job); a new ``Monitor(url, resume=key)`` continues it. Timed from the
   ``Monitor(...)`` call to its return (the run found and reopened, ``running`` again) and
   to its first new epoch delivered (stored by the server), over ``--requeues`` runs.

Run from the repository root: ``python -m bench.bench_sync``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from collapse_lab import Monitor, local

from bench.bench_sse_latency import percentile
from bench.local_stack import local_stack

SYNC = [sys.executable, "-m", "collapse_lab", "sync"]


def _probe(rng: np.random.Generator, rows: int, dim: int) -> np.ndarray:
    return rng.standard_normal((rows, dim)).astype(np.float32)


def _uploaded(run_dir: Path, url: str) -> set[int]:
    try:
        servers = json.loads((run_dir / local.SYNC_FILE).read_text())["servers"]
    except (OSError, ValueError, KeyError):
        return set()
    return set(servers.get(url, {}).get("uploaded", []))


def sync_rate(url: str, root: Path, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, args.rows)
    took, idle = [], []
    for repeat in range(args.repeats):
        monitor = Monitor(name=f"bench-sync-{repeat}", offline=True, run_dir=root, resume=False)
        for epoch in range(args.epochs):
            monitor.log_epoch(epoch, _probe(rng, args.rows, args.dim), labels=labels)
        assert monitor.finish(timeout=60) and monitor.run_dir is not None
        started = time.perf_counter()
        result = subprocess.run([*SYNC, str(monitor.run_dir), url], capture_output=True, text=True)
        took.append(time.perf_counter() - started)
        if result.returncode or f"{args.epochs} epochs uploaded" not in result.stdout:
            raise RuntimeError(f"sync failed: {result.stdout}{result.stderr}")
        started = time.perf_counter()  # again: "nothing new", the command's own cost
        result = subprocess.run([*SYNC, str(monitor.run_dir), url], capture_output=True, text=True)
        idle.append(time.perf_counter() - started)
        if result.returncode or "nothing new" not in result.stdout:
            raise RuntimeError(f"second sync: {result.stdout}{result.stderr}")
    wall = statistics.median(took)
    print(
        f"sync of a finished {args.epochs}-epoch offline run, {args.rows} x {args.dim}: "
        f"median {wall:.2f} s over {args.repeats} runs ({min(took):.2f}-{max(took):.2f} s), "
        f"{args.epochs / wall:.0f} epochs/s, the command's start included; the same "
        f"command with nothing to send (nothing new): {statistics.median(idle):.2f} s"
    )


def follow_lag(url: str, root: Path, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    monitor = Monitor(name="bench-follow", offline=True, run_dir=root, resume=False)
    monitor.log_epoch(0, _probe(rng, args.rows, args.dim))
    run_dir = monitor.run_dir
    assert run_dir is not None
    while not local.stored_epochs(run_dir):
        time.sleep(0.001)
    # --idle-timeout: the relay ends 5 s after the run finished (no epoch comes 5 s apart)
    follower = subprocess.Popen(
        [*SYNC, "--follow", "--idle-timeout", "5", str(run_dir), url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    lags = []
    try:
        while 0 not in _uploaded(run_dir, url):
            time.sleep(0.001)
        for epoch in range(1, args.follow_epochs + 1):
            time.sleep(rng.uniform(0.1, 1.1))  # lands anywhere in the follow's 1 s poll
            monitor.log_epoch(epoch, _probe(rng, args.rows, args.dim))
            path = local.epoch_path(run_dir, epoch)
            while not path.exists():
                time.sleep(0.001)
            landed = time.perf_counter()
            while epoch not in _uploaded(run_dir, url):
                time.sleep(0.001)
            lags.append(time.perf_counter() - landed)
        assert monitor.finish(timeout=60)
        follower.wait(60)
    finally:
        if follower.poll() is None:
            follower.kill()
    ms = [1000 * lag for lag in lags]
    print(
        f"sync --follow (--poll 1), epoch file landed -> stored by the server, {len(ms)} "
        f"epochs: p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 0.95):.0f} ms, "
        f"max {max(ms):.0f} ms"
    )


def requeue(url: str, args: argparse.Namespace) -> None:
    rng = np.random.default_rng(2)
    reopened, continued = [], []
    for _ in range(args.requeues):
        key = f"bench-requeue-{uuid.uuid4().hex[:8]}"
        first = Monitor(url, name="bench-requeue", resume=key)
        for epoch in range(3):
            first.log_epoch(epoch, _probe(rng, args.rows, args.dim))
        assert first.finish(timeout=60, error="SystemExit: 143 (preempted)")
        started = time.perf_counter()
        second = Monitor(url, name="bench-requeue", resume=key)
        reopened.append(time.perf_counter() - started)
        assert second.resumed and second.run_id == first.run_id
        second.log_epoch(3, _probe(rng, args.rows, args.dim))
        while 3 not in second.stats.delivered:
            time.sleep(0.001)
        continued.append(time.perf_counter() - started)
        assert second.finish(timeout=60)
    for what, values in (
        ("returned (run reopened)", reopened),
        ("first new epoch stored", continued),
    ):
        ms = [1000 * value for value in values]
        print(
            f"requeued job, Monitor(resume=key) called -> {what}, {len(ms)} runs: "
            f"p50 {statistics.median(ms):.0f} ms, p95 {percentile(ms, 0.95):.0f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--follow-epochs", type=int, default=20)
    parser.add_argument("--requeues", type=int, default=10)
    args = parser.parse_args()
    with local_stack(workers=False) as stack, tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        sync_rate(stack.base_url, root, args)
        follow_lag(stack.base_url, root, args)
        requeue(stack.base_url, args)


if __name__ == "__main__":
    main()
