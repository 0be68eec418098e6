"""Two deployments on one host sharing one Redis server (the same URL, database 0), each with
its own data directory and database: both launch runs at the same time, every run succeeds
on its own deployment's worker, and no worker ever receives the other's tasks (before each
deployment had its id, the workers took each other's train tasks and dropped them: "not
started: the run no longer exists").

And two ``collapse-lab up`` on one host with the same REDIS_URL and no Redis running: the
first starts one, which stops with it, so the second starts its own (before, the second used
the first's, and stopping the first stack took the second's broker with it)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from tests.service.stack import (
    FAST_TIMEOUTS,
    REPO,
    TINY_RUN,
    RedisServer,
    ServiceStack,
    descendants,
    free_port,
    wait_until,
)
from workers.launcher import RedisOwner, UpError, choose_redis, redis_owner

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


def cmdline(pid: int) -> bytes:
    return Path(f"/proc/{pid}/cmdline").read_bytes()


def environment(pid: int) -> dict[str, str]:
    """The environment process ``pid`` was started with."""
    entries = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
    return dict(entry.split("=", 1) for entry in entries if "=" in entry)


class Up:
    """``collapse-lab up`` (API and a projection worker, no training worker) in a subprocess."""

    def __init__(self, workdir: Path, redis_url: str) -> None:
        workdir.mkdir()
        self.data_dir = (workdir / "data").resolve()
        self.api_port = free_port()
        self.log = workdir / "up.log"
        env = {**os.environ, **FAST_TIMEOUTS, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1"}
        for name in ("DATABASE_URL", "DATA_DIR", "API_PORT", "API_HOST", "PUBLIC_URL"):
            env.pop(name, None)
        command = ["up", "--gpus", "none", "--train-workers", "0", "--port", str(self.api_port)]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *command, "--data-dir", str(self.data_dir)],
            cwd=REPO,
            env=env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )

    def health(self) -> dict:
        response = httpx.get(f"http://127.0.0.1:{self.api_port}/api/health", timeout=5)
        return dict(response.json())

    def wait_until_up(self) -> None:
        def up() -> bool:
            assert self.process.poll() is None, self.log.read_text()
            health = self.health()
            return bool(health["redis"]["ok"] and health["workers"]["projection"] == 1)

        wait_until(up, 120, interval=0.5, what=f"collapse-lab up on port {self.api_port}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()  # its children get SIGTERM (PR_SET_PDEATHSIG)
                self.process.wait(10)


def test_a_second_up_starts_its_own_redis_and_outlives_the_first(tmp_path: Path) -> None:
    shared_url = f"redis://127.0.0.1:{free_port()}/0"  # nothing answers there yet
    first = Up(tmp_path / "first", shared_url)
    second: Up | None = None
    try:
        first.wait_until_up()
        assert redis_owner(shared_url) == RedisOwner(first.data_dir, first.process.pid)
        with pytest.raises(UpError, match="already runs with this data directory"):
            choose_redis(shared_url, first.data_dir)  # a second `up` of the same deployment
        second = Up(tmp_path / "second", shared_url)
        second.wait_until_up()
        started = re.search(r"starting this deployment's own at (\S+)", second.log.read_text())
        assert started, second.log.read_text()
        own_url = started.group(1)
        assert own_url != shared_url
        assert redis_owner(own_url) == RedisOwner(second.data_dir, second.process.pid)
        assert (second.data_dir / "collapse_lab.db").exists(), "--data-dir holds the database"
        # the second's API was given its Redis, data directory and address (alerts link to it)
        [api] = [p for p in descendants(second.process.pid) if b"uvicorn" in cmdline(p)]
        assert {
            "REDIS_URL": own_url,
            "DATA_DIR": str(second.data_dir),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(second.api_port),
        }.items() <= environment(api).items()

        first.stop()
        assert first.process.returncode == 0
        with pytest.raises(redis.ConnectionError):  # the first's Redis stopped with it
            redis.Redis.from_url(shared_url, socket_connect_timeout=1).ping()
        # the second's API and worker still reach their broker
        health = second.health()
        assert health["redis"]["ok"], health
        assert health["workers"]["projection"] == 1, health
        second.stop()
        assert second.process.returncode == 0, second.log.read_text()[-2000:]
    finally:
        first.stop()
        if second is not None:
            second.stop()
