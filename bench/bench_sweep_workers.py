"""Wall time of a 4-run sweep with one training worker and with two, on this machine.

A real stack (redis-server, API, a projection worker) and 1 or 2 train workers, each on one
CPU thread (the service's worker setting). The sweep: VICReg on digits, variance_weight
0, 5, 25, 50, 4 epochs on 512 training images, every epoch trained (no early stop), its
concurrency 4 so that only the workers limit it. Time from ``POST /api/sweeps`` until every
run has succeeded. Prints both figures and the speed-up (ideal 2x on 2 free cores).

Run from the repository root: ``python -m bench.bench_sweep_workers`` (a few minutes).
"""

from __future__ import annotations

import os
import time

import httpx

from bench.local_stack import local_stack
from tests.service.stack import wait_until

# The stack's test timeouts (5 s without a heartbeat = a dead worker) are for an idle
# machine; on a shared one a busy worker misses them and its run is requeued.
PATIENT_HEARTBEATS = {"HEARTBEAT_TIMEOUT_S": "120"}

SWEEP = {
    "base": {"preset": "vicreg", "dataset": "digits", "epochs": 4, "train_size": 512},
    "grid": {"variance_weight": [0, 5, 25, 50]},
    "concurrency": 4,
    "stop_when_settled": False,
}


def sweep_wall_time(train_workers: int) -> float:
    with local_stack(workers=True, extra_env=PATIENT_HEARTBEATS) as stack:
        for index in range(1, train_workers):
            stack.start_worker(f"bench-train-{index + 1}", "train")
        stack.wait_for_workers(train=train_workers)
        with httpx.Client(base_url=stack.base_url, timeout=30) as client:
            started = time.perf_counter()
            sweep_id = client.post("/api/sweeps", json=SWEEP).raise_for_status().json()["id"]

            def finished() -> bool:
                sweep = client.get(f"/api/sweeps/{sweep_id}").json()
                counts: dict[str, int] = sweep["counts"]
                assert not counts["failed"], sweep
                return counts["succeeded"] == 4

            wait_until(finished, 3600, interval=0.5, what="the sweep")
            return time.perf_counter() - started


def main() -> None:
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    one = sweep_wall_time(1)
    print(f"4-run sweep, 1 train worker:  {one:.1f} s")
    two = sweep_wall_time(2)
    print(f"4-run sweep, 2 train workers: {two:.1f} s")
    print(f"speed-up: {one / two:.2f}x (load average after: {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
