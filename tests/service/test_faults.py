"""Faults on the graceful path that tests/service/test_run_lifecycle.py does not cover
(there: SIGKILL and SIGTERM of a worker mid-run, a Redis restart, a run that kills its
worker MAX_WORKER_LOSSES times)."""

from __future__ import annotations

import time

import httpx

from tests.service.stack import FAST_TIMEOUTS, TINY_RUN, ServiceStack, collect_until, wait_until


def test_cancelling_a_run_whose_worker_died_ends_it_within_seconds(
    api: httpx.Client, stack: ServiceStack
) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 40}).json()
    url = f"/api/runs/{run['id']}/events"
    collect_until(api, url, stop=lambda e: e.event == "epoch" and e.data["epoch"] == 1)
    stack.kill_training_workers()  # SIGKILL: nobody will read the cancel flag
    requested = time.monotonic()
    assert api.post(f"/api/runs/{run['id']}/cancel").status_code == 202

    def cancelled() -> bool:
        return api.get(f"/api/runs/{run['id']}").json()["status"] == "cancelled"

    wait_until(cancelled, 30, interval=0.1, what="the run to end cancelled")
    took = time.monotonic() - requested
    print(f"cancelled {took:.1f} s after the request")
    # well before the heartbeat timeout: a few missed beats plus one reaper pass
    assert took < float(FAST_TIMEOUTS["HEARTBEAT_TIMEOUT_S"]), took
    final = api.get(f"/api/runs/{run['id']}").json()
    assert final["worker_losses"] == 1 and final["progress"] is None
