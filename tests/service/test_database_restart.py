"""A PostgreSQL restart mid-run: the stack (API, train worker, projection worker) runs on a
private cluster that the test stops for 3 s while a run trains; the run must end as if nothing
happened and the API must answer again as soon as the database is back."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.service.stack import (
    TINY_RUN,
    PostgresServer,
    RedisServer,
    ServiceStack,
    SseEvent,
    collect_until,
    is_terminal_status,
    iter_sse,
    wait_until,
)

pytestmark = pytest.mark.postgres

OUTAGE_S = 3.0


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    if shutil.which("initdb") is None or shutil.which("pg_ctl") is None:
        pytest.skip("initdb/pg_ctl are not installed")
    server = PostgresServer()
    server.init()
    server.start()
    yield server
    server.remove()


@pytest.fixture(scope="module")
def restart_stack(
    redis_server: RedisServer,
    own_postgres: PostgresServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceStack]:
    workdir: Path = tmp_path_factory.mktemp("pg-restart")
    service = ServiceStack(
        workdir=workdir,
        redis_url=redis_server.url.replace("/0", "/6"),
        database_url=own_postgres.url,
        # the outage (OUTAGE_S plus stopping and starting the server) silences heartbeats for
        # about 4 s: a reaper with the stack's 5 s would call a loaded worker lost; a
        # heartbeat that never resumes still fails the test (`heartbeat_resumed`)
        extra_env={"HEARTBEAT_TIMEOUT_S": "30"},
    )
    # the projection worker first: its UMAP warm-up (the slowest start) overlaps the others'
    service.start_worker("pgr-projection", "projection")
    service.start_api()
    service.start_worker("pgr-train", "train")
    service.wait_for_workers(train=1)
    yield service
    service.stop()


def _epoch_counts(server: PostgresServer, run_id: str) -> dict[int, int]:
    dsn = server.url.replace("postgresql+psycopg", "postgresql")
    with psycopg.connect(dsn) as connection:
        rows = connection.execute(
            "SELECT epoch, COUNT(*) FROM epochs WHERE run_id = %s GROUP BY epoch", (run_id,)
        ).fetchall()
    return dict(rows)


def _watch(base_url: str, url: str, events: list[SseEvent]) -> int:
    """Follow the run's stream to its end, reconnecting with Last-Event-ID if the API cuts it
    off (it did, before streams waited for the database). Returns the reconnects."""
    reconnects = 0
    with httpx.Client(base_url=base_url, timeout=30) as client:
        while True:
            last = events[-1].id if events else None
            try:
                for item in iter_sse(client, url, last_event_id=last, timeout=120):
                    if isinstance(item, str) or item.event == "progress":
                        continue
                    events.append(item)
                    if is_terminal_status(item):
                        return reconnects
            except httpx.HTTPError:
                pass
            reconnects += 1
            time.sleep(0.3)


def test_a_postgresql_restart_mid_run_loses_nothing(
    restart_stack: ServiceStack, own_postgres: PostgresServer
) -> None:
    figures: dict[str, float] = {}
    with httpx.Client(base_url=restart_stack.base_url, timeout=30) as client:
        assert client.get("/api/health").json()["database"]["backend"] == "postgresql"
        epochs = 6
        run_id = client.post("/api/runs", json={**TINY_RUN, "epochs": epochs}).json()["id"]
        url = f"/api/runs/{run_id}/events"
        events: list[SseEvent] = []
        viewer = threading.Thread(
            target=lambda: figures.update(reconnects=_watch(restart_stack.base_url, url, events))
        )
        viewer.start()
        wait_until(
            lambda: any(e.event == "epoch" and e.data["epoch"] == 1 for e in events),
            120,
            what="epoch 1",
        )
        own_postgres.stop()
        down = time.monotonic()
        assert not any(is_terminal_status(e) for e in events), "the run ended before the stop"
        # a request that needs the database: 503 and when to retry, not a 500
        refused = client.get(f"/api/runs/{run_id}")
        assert refused.status_code == 503 and refused.headers["retry-after"], refused.text
        # the worker goes on training; its writes wait for the database
        time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down)))
        own_postgres.start()
        up, up_wall = time.monotonic(), time.time()
        figures["outage_s"] = up - down

        with httpx.Client(base_url=restart_stack.base_url, timeout=10) as probe:

            def database_ok() -> bool:
                return bool(probe.get("/api/health").json()["database"]["ok"])

            def run_readable() -> bool:
                return probe.get(f"/api/runs/{run_id}").status_code == 200

            def heartbeat_resumed() -> bool:
                beat = probe.get(f"/api/runs/{run_id}").json()["heartbeat_at"]
                return beat is not None and datetime.fromisoformat(beat).timestamp() > up_wall

            wait_until(database_ok, 30, interval=0.05, what="the API to reach the database")
            figures["api_database_ok_after_s"] = time.monotonic() - up
            wait_until(run_readable, 30, interval=0.05, what="the run to be readable")
            figures["api_run_readable_after_s"] = time.monotonic() - up
            wait_until(heartbeat_resumed, 30, interval=0.1, what="the run's heartbeat")
            figures["heartbeat_after_s"] = time.monotonic() - up

        viewer.join(180)
        assert not viewer.is_alive(), "the run did not finish"
        figures["run_ended_after_s"] = time.monotonic() - up
        print(
            "PostgreSQL restart mid-run: " + ", ".join(f"{k} {v:.2f}" for k, v in figures.items())
        )

        assert events[-1].data["status"] == "succeeded", events[-1].data
        # the viewer's stream stayed open through the outage (an EventSource would give up
        # on the error status of a reconnect)
        assert figures["reconnects"] == 0
        ids = [e.id for e in events]
        assert ids == list(range(1, len(ids) + 1)), "no gap, no duplicate"
        assert _epoch_counts(own_postgres, run_id) == {epoch: 1 for epoch in range(epochs + 1)}
        streamed = [e.data for e in events if e.event == "epoch"]
        assert client.get(f"/api/runs/{run_id}/epochs").json() == streamed
        final = client.get(f"/api/runs/{run_id}").json()
        assert final["attempts"] == 1 and final["worker_losses"] == 0, final

        follow_up = client.post("/api/runs", json={**TINY_RUN, "epochs": 1}).json()
        done = collect_until(client, f"/api/runs/{follow_up['id']}/events", stop=is_terminal_status)
        assert done[-1].data["status"] == "succeeded"

        def all_projected() -> bool:
            listed = client.get(f"/api/runs/{run_id}/projections").json()["epochs"]
            return bool(listed == list(range(epochs + 1)))

        # last: the projection worker may still be warming up UMAP on a loaded machine
        wait_until(all_projected, 90, interval=0.5, what="every epoch's projection")
