"""The whole service on PostgreSQL: API and worker share a fresh database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.service.stack import (
    TINY_RUN,
    RedisServer,
    ServiceStack,
    collect_until,
    is_terminal_status,
    wait_until,
)

pytestmark = pytest.mark.postgres


@pytest.fixture(scope="module")
def pg_stack(
    redis_server: RedisServer, postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    workdir: Path = tmp_path_factory.mktemp("pg-stack")
    service = ServiceStack(
        workdir=workdir, redis_url=redis_server.url.replace("/0", "/3"), database_url=postgres_url
    )
    service.start_api()
    service.start_worker("pg-train", "train")
    service.wait_for_workers(train=1)
    yield service
    service.stop()


def test_a_run_on_postgresql_streams_and_stores_every_epoch(pg_stack: ServiceStack) -> None:
    with httpx.Client(base_url=pg_stack.base_url, timeout=30) as client:
        assert client.get("/api/health").json()["database"]["backend"] == "postgresql"
        run = client.post("/api/runs", json={**TINY_RUN, "epochs": 2}).json()
        url = f"/api/runs/{run['id']}/events"
        events = collect_until(client, url, stop=is_terminal_status)
        assert events[-1].data["status"] == "succeeded"
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        streamed = [e.data for e in events if e.event == "epoch"]
        assert client.get(f"/api/runs/{run['id']}/epochs").json() == streamed
        assert [r["epoch"] for r in streamed] == [0, 1, 2]
        resumed = collect_until(client, url, last_event_id=2, stop=is_terminal_status)
        assert [e.id for e in resumed] == [e.id for e in events[2:]]


def test_a_sweep_on_postgresql_runs_one_at_a_time_and_maps_its_cells(
    pg_stack: ServiceStack,
) -> None:
    body = {
        "base": {**TINY_RUN, "epochs": 1},
        "grid": {"proj_dim": [16, 32]},
        "concurrency": 1,
    }
    with httpx.Client(base_url=pg_stack.base_url, timeout=30) as client:
        created = client.post("/api/sweeps", json=body).json()

        def finished() -> dict[str, Any] | None:
            sweep = client.get(f"/api/sweeps/{created['id']}").json()
            assert sweep["counts"]["running"] <= 1, "concurrency 1: one run at a time"
            return sweep if sweep["status"] == "finished" else None

        sweep = wait_until(finished, 300, interval=0.3, what="the sweep on PostgreSQL")
        assert [c["point"] for c in sweep["cells"]] == [{"proj_dim": 16}, {"proj_dim": 32}]
        assert all(c["runs"][0]["final"]["epoch"] == 1 for c in sweep["cells"])
        assert all(c["verdict_kind"] is not None for c in sweep["cells"])
