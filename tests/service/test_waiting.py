"""A queued run says why it waits in the run resource itself (``GET /api/runs/{id}`` ->
``waiting``), typed in the OpenAPI document: no worker at all, no GPU worker, no worker with
its method, held by its sweep's concurrency, or behind the runs sent before it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import redis

from backend.broker import WorkerInfo
from backend.dispatch import why_waiting
from backend.store.models import Run
from backend.store.runs import QueuePosition
from tests.service.stack import TINY_RUN, ServiceStack, collect_until, wait_until
from tests.service.test_sweeps import VICREG_SWEEP


def _waiting(client: httpx.Client, run_id: str) -> dict[str, Any] | None:
    run = client.get(f"/api/runs/{run_id}").json()
    assert run["status"] == "queued", run
    waiting: dict[str, Any] | None = run["waiting"]
    return waiting


def _launch(client: httpx.Client, **fields: Any) -> str:
    response = client.post("/api/runs", json={**TINY_RUN, **fields})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def _cancel(client: httpx.Client, run_ids: list[str]) -> None:
    for run_id in run_ids:
        client.post(f"/api/runs/{run_id}/cancel")


def test_waiting_is_typed_in_openapi(idle_stack: ServiceStack) -> None:
    schema = httpx.get(f"{idle_stack.base_url}/openapi.json", timeout=10).json()
    waiting = schema["components"]["schemas"]["Waiting"]
    assert set(waiting["properties"]["reason"]["enum"]) == {
        "no_gpu_worker",
        "no_worker",
        "no_worker_with_plugin",
        "sweep_concurrency",
        "behind_queue",
    }
    assert "waiting" in schema["components"]["schemas"]["RunDetail"]["properties"]


def test_without_workers_a_run_waits_for_one_of_its_device(idle_stack: ServiceStack) -> None:
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        auto, gpu = _launch(client), _launch(client, device="cuda")
        try:
            waiting = _waiting(client, auto)
            assert waiting is not None and waiting["reason"] == "no_worker", waiting
            assert "none is connected" in waiting["detail"]
            waiting = _waiting(client, gpu)
            assert waiting is not None and waiting["reason"] == "no_gpu_worker", waiting
            assert waiting["ahead"] >= 1  # the auto run was sent first
            # its stream says the same sentence (one definition)
            collect_until(
                client,
                f"/api/runs/{gpu}/events",
                stop=lambda e: e.event == "status" and e.data.get("reason") == waiting["detail"],
                timeout=15,
            )
        finally:
            _cancel(client, [auto, gpu])


def test_a_worker_without_the_runs_method_does_not_count(idle_stack: ServiceStack) -> None:
    """A connected worker (as it describes itself in Redis) that lacks the run's method."""
    names = idle_stack.redis_names()
    key = names.worker_key("plugin-less:1")
    info = WorkerInfo(
        id="plugin-less:1",
        queues=["train.cpu", "train"],
        pid=1,
        started_at=0.0,
        methods=["simclr"],
    )
    redis_client = redis.Redis.from_url(idle_stack.redis_url)
    redis_client.set(key, info.model_dump_json(), ex=30)
    # an announcement of another shape (an older worker's, a foreign key) is left out
    garbage = names.worker_key("garbage:2")
    redis_client.set(garbage, json.dumps({"queues": "train"}), ex=30)
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        run_id = _launch(client)
        try:
            waiting = _waiting(client, run_id)
            assert waiting is not None and waiting["reason"] == "no_worker_with_plugin"
            assert "'simsiam'" in waiting["detail"]
        finally:
            _cancel(client, [run_id])
            redis_client.delete(key, garbage)
            redis_client.close()


def test_a_held_sweep_run_waits_for_its_sweep(idle_stack: ServiceStack) -> None:
    body = {**VICREG_SWEEP, "grid": {"variance_weight": [0, 5, 25]}, "concurrency": 1}
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        created = client.post("/api/sweeps", json=body).json()
        try:
            reasons = [(_waiting(client, run_id) or {}).get("reason") for run_id in created["runs"]]
            assert reasons == ["no_worker", "sweep_concurrency", "sweep_concurrency"], reasons
            held = _waiting(client, created["runs"][2])
            assert held is not None and "1 of its runs" in held["detail"], held
        finally:
            client.post(f"/api/sweeps/{created['id']}/cancel")


def test_behind_a_busy_worker_a_run_counts_the_runs_ahead(api: httpx.Client) -> None:
    """The stack's one real train worker trains the first run; the others wait behind it."""
    runs = [_launch(api, epochs=30) for _ in range(3)]
    try:
        wait_until(
            lambda: api.get(f"/api/runs/{runs[0]}").json()["status"] == "running",
            120,
            what="the first run to start",
        )
        # the worker says it is busy in its description, rewritten every 2 s
        wait_until(
            lambda: (
                (_waiting(api, runs[2]) or {})
                .get("detail", "")
                .endswith("; the 1 worker that can train it is busy")
            ),
            30,
            what="the last run to wait for the busy worker",
        )
        last = _waiting(api, runs[2])
        assert last is not None and last["reason"] == "behind_queue", last
        assert last["ahead"] >= 1 and last["detail"].startswith(f"behind {last['ahead']} "), last
        assert api.get(f"/api/runs/{runs[0]}").json()["waiting"] is None  # it runs
    finally:
        _cancel(api, runs)


def _worker(running: bool) -> WorkerInfo:
    return WorkerInfo(
        id="w:1",
        queues=["train"],
        pid=1,
        started_at=0.0,
        methods=["simsiam"],
        running="a-run" if running else None,
    )


@pytest.mark.parametrize(
    ("ahead", "busy", "idle", "detail"),
    [
        (0, 1, 0, "the 1 worker that can train it is busy"),
        (1, 1, 0, "behind 1 queued run; the 1 worker that can train it is busy"),
        (2, 0, 1, "behind 2 queued runs; the 1 worker that can train it is free"),
        (0, 3, 0, "all 3 workers that can train it are busy"),
        (4, 1, 1, "behind 4 queued runs; 1 of the 2 workers that can train it is busy"),
        (1, 2, 1, "behind 1 queued run; 2 of the 3 workers that can train it are busy"),
    ],
)
def test_the_queue_sentence_reads_naturally_for_any_count(
    ahead: int, busy: int, idle: int, detail: str
) -> None:
    """No "behind 0 queued runs" nor "1 of the 1 workers": the sentence the run page shows."""
    run = Run(method="simsiam", config={"device": "auto"}, sweep_id=None, enqueued_at=1.0)
    workers = [_worker(True)] * busy + [_worker(False)] * idle
    waiting = why_waiting(run, QueuePosition(ahead=ahead), workers)
    assert waiting is not None and waiting.reason == "behind_queue", waiting
    assert (waiting.detail, waiting.ahead) == (detail, ahead)
