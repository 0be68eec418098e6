"""Faults on the graceful path that tests/service/test_run_lifecycle.py does not cover
(there: SIGKILL and SIGTERM of a worker mid-run, a Redis restart, a run that kills its
worker MAX_WORKER_LOSSES times); here also a SLURM job of workers told to stop with SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.service.stack import (
    FAST_TIMEOUTS,
    REPO,
    TINY_RUN,
    ServiceStack,
    collect_until,
    descendants,
    is_terminal_status,
    wait_until,
)


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


def _slurm_job(stack: ServiceStack, name: str) -> subprocess.Popen[bytes]:
    """``collapse-lab worker --gpus all`` as the README's sbatch script starts it, in its own
    process group like a job step (no GPU here: it starts a CPU training worker)."""
    return subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "worker", "--gpus", "all"],
        cwd=REPO,
        env=stack.env(),
        stdout=(stack.workdir / f"slurm-{name}.log").open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def test_a_slurm_preempted_worker_gives_its_run_to_the_next_job(
    api: httpx.Client, stack: ServiceStack
) -> None:
    """The README's sbatch script: ``--signal=B:TERM@120`` sends SIGTERM to the batch shell
    only, which ``exec`` made the launcher; its Celery worker hears nothing from SLURM (it
    runs in its own session). The launcher passes the signal on: the run goes back to the
    queue, every process of the job exits, and the next job (or any worker) resumes the
    run from its checkpoint, each epoch once."""
    stack.kill_training_workers(signal.SIGTERM)  # only the "SLURM jobs" take runs here
    first = _slurm_job(stack, "first")
    try:
        stack.wait_for_workers(train=1)
        run = api.post("/api/runs", json={**TINY_RUN, "epochs": 6}).json()
        url = f"/api/runs/{run['id']}/events"
        collect_until(api, url, stop=lambda e: e.event == "epoch" and e.data["epoch"] == 1)
        workers = descendants(first.pid)
        assert workers, "the launcher started no worker"
        signalled = time.monotonic()
        os.kill(first.pid, signal.SIGTERM)  # the launcher's pid only, not its group

        def requeued() -> bool:
            return api.get(f"/api/runs/{run['id']}").json()["status"] == "queued"

        wait_until(requeued, 60, interval=0.05, what="the run back in the queue")
        to_queue = time.monotonic() - signalled
        first.wait(60)
        to_exit = time.monotonic() - signalled
        assert first.returncode == 0, first.returncode
        for pid in workers:  # nothing of the job is left behind
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    requeue = _slurm_job(stack, "requeued")
    started = time.monotonic()
    try:
        events = collect_until(api, url, stop=is_terminal_status, timeout=240)
        to_done = time.monotonic() - started
        resumed_at = api.get(f"/api/runs/{run['id']}").json()
    finally:
        os.killpg(requeue.pid, signal.SIGTERM)
        requeue.wait(60)
    print(
        f"SIGTERM -> run queued {to_queue:.1f} s, job exited {to_exit:.1f} s; "
        f"requeued job start -> run succeeded {to_done:.1f} s"
    )
    assert events[-1].data["status"] == "succeeded"
    assert resumed_at["worker_losses"] == 0 and resumed_at["attempts"] == 2
    assert to_exit < 120, "slower than the 120 s of --signal=B:TERM@120"
    epochs = [r["epoch"] for r in api.get(f"/api/runs/{run['id']}/epochs").json()]
    assert epochs == list(range(7))  # each epoch stored once
