"""A Redis without persistence that restarts (everything in it lost) or goes away for a
while: queued runs are sent again within seconds, once; live streams keep their latency by
polling the database; projections that could not be sent are sent when Redis is back."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from collapse_lab import wire

from backend.dispatch import broker_tasks
from tests.service.stack import (
    TINY_RUN,
    RedisServer,
    ServiceStack,
    iter_sse,
    wait_until,
)


@pytest.fixture(scope="module")
def lossy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceStack, RedisServer]]:
    """An API and a projection worker on a Redis that forgets everything when restarted;
    production's keep-alive (15 s), so a stream that waits for news would be late."""
    workdir: Path = tmp_path_factory.mktemp("lossy")
    server = RedisServer(workdir / "redis", persistent=False)
    server.start()
    service = ServiceStack(
        workdir=workdir,
        redis_url=server.url,
        database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
        # a short REQUEUE_QUEUED_AFTER_S: a run that merely waits is still not sent twice
        extra_env={"SSE_KEEPALIVE_S": "15", "REQUEUE_QUEUED_AFTER_S": "2"},
    )
    service.start_api()
    service.start_worker("projection", "projection")
    try:
        yield service, server
    finally:
        service.stop()
        server.stop()


def _train_tasks(service: ServiceStack) -> list[str]:
    client = redis.Redis.from_url(service.redis_url)
    try:
        return [r.decode() for r in client.lrange(service.redis_names().broker_key("train"), 0, -1)]
    finally:
        client.close()


def test_a_run_waiting_in_the_queue_is_not_sent_again(
    lossy: tuple[ServiceStack, RedisServer],
) -> None:
    """No train worker: the run waits past REQUEUE_QUEUED_AFTER_S (2 s) through several
    reaper passes (1 s) of the API and the projection worker; its one message stays one."""
    service, server = lossy
    with httpx.Client(base_url=service.base_url, timeout=30) as api:
        run_id = api.post("/api/runs", json={**TINY_RUN, "epochs": 2}).json()["id"]
        time.sleep(6)
        assert _train_tasks(service) and len(_train_tasks(service)) == 1
        assert api.post(f"/api/runs/{run_id}/cancel").status_code == 202
    train_queue = service.redis_names().broker_key("train")
    redis.Redis.from_url(server.url).delete(train_queue)  # the cancelled run's message


def test_a_queued_run_whose_task_redis_lost_is_sent_again_within_seconds_and_once(
    lossy: tuple[ServiceStack, RedisServer],
) -> None:
    service, server = lossy
    with httpx.Client(base_url=service.base_url, timeout=30) as api:
        run_id = api.post("/api/runs", json={**TINY_RUN, "epochs": 2}).json()["id"]
        client = redis.Redis.from_url(server.url)
        names = service.redis_names()
        assert broker_tasks(client, names).train == {run_id}
        server.stop()
        server.start()  # empty: the queued run's message is gone
        restarted = time.monotonic()
        wait_until(lambda: run_id in broker_tasks(client, names).train, 15, what="the re-send")
        resent_after = time.monotonic() - restarted
        time.sleep(3)  # more checks and reaper passes: none sends it again
        assert len(_train_tasks(service)) == 1
        client.close()
        print(f"re-sent {resent_after:.1f} s after the restart")
        assert resent_after < 10

        service.start_worker("train", "train")

        def finished() -> bool:
            return api.get(f"/api/runs/{run_id}").json()["status"] == "succeeded"

        wait_until(finished, 120, what="the run to finish")


def test_streams_keep_their_latency_and_projections_arrive_through_an_outage(
    lossy: tuple[ServiceStack, RedisServer],
) -> None:
    service, server = lossy
    if "train" not in service.workers:
        service.start_worker("train", "train")
        service.wait_for_workers(train=1)
    arrived: dict[int, float] = {}
    with httpx.Client(base_url=service.base_url, timeout=30) as api:
        run = {**TINY_RUN, "epochs": 14, "train_size": 512}
        run_id = api.post("/api/runs", json=run).json()["id"]

        def watch() -> None:
            with httpx.Client(base_url=service.base_url, timeout=30) as viewer:
                for item in iter_sse(viewer, f"/api/runs/{run_id}/events", timeout=300):
                    if isinstance(item, str):
                        continue
                    if item.event == "epoch":
                        arrived.setdefault(item.data["epoch"], time.monotonic())
                    if item.event == "status" and item.data["status"] in ("succeeded", "failed"):
                        return

        viewer = threading.Thread(target=watch, daemon=True)
        viewer.start()
        wait_until(lambda: 1 in arrived, 120, what="epoch 1")
        server.stop()
        committed: dict[int, float] = {}
        outage_ends = time.monotonic() + 8
        while time.monotonic() < outage_ends:
            for record in api.get(f"/api/runs/{run_id}/epochs").json():
                committed.setdefault(record["epoch"], time.monotonic())
            time.sleep(0.1)
        server.start()
        viewer.join(240)
        assert not viewer.is_alive(), "the run did not finish"
        during = [e for e in committed if e > 1 and e in arrived]
        assert during, f"no epoch was committed during the outage ({committed})"
        late = {e: round(arrived[e] - committed[e], 2) for e in during}
        print(f"stream latency during the outage, per epoch: {late}")
        assert max(late.values()) < 3, late

        def all_projected() -> bool:
            listed = api.get(f"/api/runs/{run_id}/projections").json()["epochs"]
            return listed == list(range(run["epochs"] + 1))

        wait_until(all_projected, 120, interval=1, what="every epoch's projection")
        assert api.get("/api/health").json()["redis"]["ok"]


def test_an_ingest_task_redis_lost_is_sent_again_within_seconds_and_once(
    lossy: tuple[ServiceStack, RedisServer],
) -> None:
    """An external run's upload whose ingest task went with a Redis restart: the broker
    check of one of the processes (API, train worker) sends it again, once. The projection
    worker (which consumes ``ingest``) is stopped first, so the copies would stay visible."""
    service, server = lossy
    service.kill_worker("projection")
    with httpx.Client(base_url=service.base_url, timeout=30) as api:
        run_id = api.post("/api/external-runs", json={"name": "lost ingest"}).json()["id"]
        body = wire.encode_epoch(0, {"z": np.random.default_rng(0).standard_normal((16, 4))})
        headers = {"Content-Type": wire.CONTENT_TYPE}
        put = api.put(f"/api/external-runs/{run_id}/epochs/0", content=body, headers=headers)
        assert put.status_code == 202
        client = redis.Redis.from_url(server.url)
        names = service.redis_names()
        assert broker_tasks(client, names).ingest == {run_id}
        server.stop()
        server.start()
        wait_until(lambda: broker_tasks(client, names).ingest, 10, what="the ingest re-send")
        time.sleep(4)  # more checks and reaper passes: none sends it again
        assert client.llen(names.broker_key("ingest")) == 1
        client.close()
