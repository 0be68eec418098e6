"""Stop on collapse: the delay from an epoch's upload to the client's stop decision, through
the real stack (uvicorn API, Redis, the ingest queue on a projection worker, SQLite).

A ``collapse_lab.Monitor`` logs a probe that collapses (2,048 x 128 float32: a shared vector
plus a spread that halves every epoch). For each epoch the time is measured from the
``log_epoch`` call (its encoding and upload included) to the moment ``monitor.verdict``
holds that epoch's verdict: the server storing the upload, the ingest worker measuring it,
and the monitor's sender thread polling the run (``GET /api/runs/{id}``, 50 ms doubling to
2 s after each delivered epoch). ``collapse_streak`` and ``collapsed``, from which
``CollapseLabCallback(stop_on_collapse=N)`` decides, change at that same moment, so this is
the delay to the decision; the training loop reads them at its next epoch end. One epoch
at a time (the next is logged once the previous one's projection is stored), so no backlog
counts, as in ``bench/bench_ingest.py``.

Then a training loop that does not wait: epochs logged back to back every ``--interval-ms``
(uploads queue in the sender thread), the loop stopping once ``collapse_streak`` reaches N,
as ``if monitor.collapsed: break`` does; printed: the epoch it stopped at against the
earliest it could have (the verdict's onset + N - 1), and how many epochs later that was.

Run from the repository root: ``python -m bench.bench_stop_delay [--epochs 20] [--stop 3]
[--interval-ms 30]``.
"""

from __future__ import annotations

import argparse
import statistics
import time

import httpx
import numpy as np
from collapse_lab import Monitor

from bench.local_stack import local_stack


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--rows", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--stop", type=int, default=3, help="stop_on_collapse's N")
    parser.add_argument(
        "--interval-ms",
        type=float,
        default=30,
        help="between epochs of the loop that does not wait",
    )
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    shared = rng.standard_normal(args.dim).astype(np.float32)
    labels = rng.integers(0, 10, args.rows)
    delays: list[float] = []
    stop: tuple[int, float] | None = None
    with local_stack(workers=True) as stack, httpx.Client(base_url=stack.base_url) as client:
        monitor = Monitor(stack.base_url, name="bench-stop-delay", labels=labels, resume=False)
        for epoch in range(args.epochs + 1):  # epoch 0 warms the worker up: not counted
            spread = 0.5**epoch * rng.standard_normal((args.rows, args.dim))
            z = (shared + spread).astype(np.float32)
            started = time.perf_counter()
            monitor.log_epoch(epoch, z)
            deadline = started + 120
            while (verdict := monitor.verdict) is None or verdict.epoch < epoch:
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"no verdict for epoch {epoch} after 120 s")
                time.sleep(0.001)
            decided = time.perf_counter() - started
            if epoch:
                delays.append(decided)
            if stop is None and monitor.collapse_streak >= args.stop:
                stop = (epoch, decided)
            # UMAP shares the worker: wait for it, so the next epoch does not queue behind.
            url = f"/api/runs/{monitor.run_id}/projections"
            while epoch not in client.get(url).json()["epochs"]:
                time.sleep(0.005)
        monitor.finish()
        unwaited = _back_to_back(stack.base_url, labels, shared, args)
    ms = [1000 * d for d in delays]
    print(
        f"upload -> stop decision (monitor.verdict of that epoch), {args.rows} x {args.dim} "
        f"float32, {len(ms)} epochs: p50 {statistics.median(ms):.0f} ms, "
        f"p95 {_percentile(ms, 0.95):.0f} ms, max {max(ms):.0f} ms"
    )
    if stop is None:
        print(f"complete collapse did not hold {args.stop} logged epochs")
    else:
        print(
            f"stop_on_collapse={args.stop}: decided at epoch {stop[0]}, "
            f"{1000 * stop[1]:.0f} ms after its upload"
        )
    print(unwaited)


def _back_to_back(
    base_url: str, labels: np.ndarray, shared: np.ndarray, args: argparse.Namespace
) -> str:
    """A loop logging an epoch every ``interval_ms`` without waiting for anything, stopping
    once complete collapse has held ``stop`` epochs: where it stopped, against the earliest
    epoch the verdict allowed."""
    rng = np.random.default_rng(1)
    monitor = Monitor(base_url, name="bench-stop-back-to-back", labels=labels, resume=False)
    stopped = None
    logged_at: list[float] = []
    for epoch in range(200):
        spread = 0.5**epoch * rng.standard_normal((args.rows, args.dim))
        logged_at.append(time.perf_counter())
        monitor.log_epoch(epoch, (shared + spread).astype(np.float32))
        if monitor.collapse_streak >= args.stop:
            stopped = epoch
            break
        time.sleep(args.interval_ms / 1000)
    verdict = monitor.verdict
    monitor.finish()
    if stopped is None or verdict is None or verdict.onset_epoch is None:
        return f"back to back every {args.interval_ms:g} ms: no stop within 200 epochs"
    earliest = verdict.onset_epoch + args.stop - 1
    late_s = logged_at[stopped] - logged_at[earliest]
    return (
        f"back to back every {args.interval_ms:g} ms: stopped after logging epoch {stopped}, "
        f"{stopped - earliest} epochs ({late_s:.2f} s) after the earliest the verdict allowed "
        f"({earliest}: onset {verdict.onset_epoch}, N = {args.stop})"
    )


if __name__ == "__main__":
    main()
