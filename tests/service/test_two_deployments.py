"""Two deployments on one host sharing one Redis server (the same URL, database 0), each with
its own data directory and database: both launch runs at the same time, every run succeeds
on its own deployment's worker, and no worker ever receives the other's tasks (before each
deployment had its id, the workers took each other's train tasks and dropped them: "not
started: the run no longer exists")."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.service.stack import TINY_RUN, RedisServer, ServiceStack, wait_until

pytestmark = pytest.mark.slow

RUNS_EACH = 3
MISDELIVERY = "the run no longer exists"


@pytest.fixture
def two_deployments(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[ServiceStack]]:
    stacks = []
    try:
        for name in ("first", "second"):
            workdir: Path = tmp_path_factory.mktemp(f"deployment-{name}")
            stack = ServiceStack(
                workdir=workdir,
                redis_url=redis_server.url,  # one Redis server, one database number
                database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
            )
            stacks.append(stack)
            stack.start_api()
            stack.start_worker(f"train-{name}", "train")
            stack.start_worker(f"projection-{name}", "projection")
        for stack in stacks:
            stack.wait_for_workers(train=1)
        yield stacks
    finally:
        for stack in stacks:
            stack.stop()


def test_two_deployments_sharing_a_redis_never_take_each_others_tasks(
    two_deployments: list[ServiceStack], redis_server: RedisServer
) -> None:
    first, second = two_deployments
    ids = {stack.redis_names().deployment_id for stack in two_deployments}
    assert len(ids) == 2, "each database created its own deployment id"
    for stack in two_deployments:  # each sees its own workers only, once both have said hello

        def own_workers(url: str = f"{stack.base_url}/api/health") -> bool:
            workers = httpx.get(url, timeout=10).json()["workers"]
            assert workers["train"] <= 1 and workers["projection"] <= 1, workers
            return bool(workers["train"] == 1 and workers["projection"] == 1)

        wait_until(own_workers, 60, interval=0.5, what=f"the workers of {stack.base_url}")

    run = {**TINY_RUN, "epochs": 1}
    launched: dict[str, list[str]] = {}
    for _ in range(RUNS_EACH):  # interleaved, so both queues fill at once
        for stack in two_deployments:
            response = httpx.post(f"{stack.base_url}/api/runs", json=run, timeout=30)
            assert response.status_code == 201, response.text
            launched.setdefault(stack.base_url, []).append(response.json()["id"])

    for stack in two_deployments:
        for run_id in launched[stack.base_url]:

            def succeeded(url: str = f"{stack.base_url}/api/runs/{run_id}") -> bool:
                status = httpx.get(url, timeout=10).json()["status"]
                assert status in ("queued", "running", "succeeded"), status
                return bool(status == "succeeded")

            wait_until(succeeded, 300, interval=0.5, what=f"run {run_id}")

    for stack in two_deployments:
        for log in stack.workdir.glob("worker-*.log"):
            assert MISDELIVERY not in log.read_text(errors="replace"), f"{log} got a foreign task"
        # every run of this deployment was trained by this deployment's own train worker
        items = httpx.get(f"{stack.base_url}/api/health", timeout=10).json()["workers"]["items"]
        own = {w["id"] for w in items if "train" in w["queues"]}
        for run_id in launched[stack.base_url]:
            epochs = httpx.get(f"{stack.base_url}/api/runs/{run_id}/epochs", timeout=10).json()
            assert {e["placement"]["worker"] for e in epochs} == own

    # Celery's keys in Redis are under each deployment's prefix, none at the top level
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = {key.decode() for key in client.scan_iter(count=500)}
    finally:
        client.close()
    for name in ("train", "unacked", "unacked_index", "_kombu.binding.train"):
        assert name not in keys, f"{name!r} is shared by the deployments"
    assert any(key.startswith(first.redis_names().prefix) for key in keys)
    assert any(key.startswith(second.redis_names().prefix) for key in keys)
