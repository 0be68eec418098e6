"""Alerts end to end: a real API and ingest worker, a run logged by the real client, and real
HTTP receivers on loopback — one that answers at once, one that answers 500 twice, one too
slow for the first post, and one that is down."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from collapse_lab import Monitor

from backend.alerts import scan_once
from backend.settings import Settings
from backend.store import runs as run_store
from backend.store import sweeps as sweep_store
from backend.store.database import Database
from backend.store.eventlog import lock_run, set_status
from backend.store.models import AlertDelivery
from backend.store.sweeps import NewSweepRun
from contract import RunStatus
from tests.service.stack import RedisServer, ServiceStack, free_port, wait_until

PUBLIC_URL = "http://lab.example:8000"


class Receiver:
    """A webhook receiver: records every post; ``/flaky`` answers 500 twice, ``/slow``
    sleeps past the sender's timeout on its first post."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, dict[str, Any], str]] = []  # path, body, header key
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with receiver.lock:
                    receiver.posts.append((self.path, body, self.headers["Idempotency-Key"]))
                    seen = sum(1 for p in receiver.posts if p[0] == self.path)
                if self.path == "/slow" and seen == 1:
                    time.sleep(3)
                status = 500 if self.path == "/flaky" and seen <= 2 else 200
                with contextlib.suppress(BrokenPipeError):  # the sender gave up waiting
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def bodies(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [body for p, body, _ in self.posts if p == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def _log_collapsing_run(monitor: Monitor, rng: np.random.Generator) -> None:
    """Epoch 0 spread out; then every row the same point (plus noise far below its scale)."""
    n, d = 256, 32
    labels = rng.integers(0, 4, n)
    monitor.log_epoch(0, rng.normal(size=(n, d)).astype(np.float32), labels=labels, loss=1.0)
    point = rng.normal(size=d)
    for epoch in (1, 2, 3):
        z = (point + 1e-4 * rng.normal(size=(n, d))).astype(np.float32)
        monitor.log_epoch(epoch, z, labels=labels, loss=-1.0)


@pytest.mark.slow
def test_receivers_get_each_alert_once_even_when_down_slow_or_failing(
    redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> None:
    down = f"http://127.0.0.1:{free_port()}/down"  # nothing listens there
    hooks = [f"{receiver.url}/ok", f"{receiver.url}/flaky", f"{receiver.url}/slow", down]
    stack = ServiceStack(
        workdir=tmp_path,
        redis_url=redis_server.url.replace("/0", "/5"),
        database_url=f"sqlite:///{tmp_path / 'collapse_lab.db'}",
        extra_env={
            "ALERT_WEBHOOKS": ",".join(hooks),
            "ALERT_TIMEOUT_S": "1",
            "ALERT_RETRY_FOR_S": "12",
            "PUBLIC_URL": PUBLIC_URL,
        },
    )
    try:
        stack.start_api()
        stack.start_worker("projection1", "projection")
        monitor = Monitor(stack.base_url, name="collapsing-loop")
        started = time.monotonic()
        _log_collapsing_run(monitor, np.random.default_rng(0))
        assert monitor.finish(timeout=120)
        logging_took = time.monotonic() - started

        def ok_events() -> list[str]:
            return [b["event"] for b in receiver.bodies("/ok")]

        wait_until(lambda: "succeeded" in ok_events(), 120, what="the finished alert")
        bodies = receiver.bodies("/ok")
        assert [b["event"] for b in bodies] == ["collapse_onset", "succeeded"], bodies
        onset, finished = bodies
        assert onset["run"]["url"] == f"{PUBLIC_URL}/runs/{monitor.run_id}"
        assert onset["verdict"]["kind"] == "complete_collapse"
        assert "complete collapse" in onset["text"] and onset["run"]["url"] in onset["text"]
        assert onset["numbers"]["effective_rank"] < 3
        assert finished["run"]["status"] == "succeeded"
        keys = {b["key"] for b in bodies}
        assert len(keys) == 2

        # the failing and the slow receiver get the same alerts, retried with the same key
        def answered(path: str, posts: int) -> list[str] | None:
            got = [b["key"] for b in receiver.bodies(path)]
            return got if len(got) >= posts else None

        flaky = wait_until(lambda: answered("/flaky", len(keys) + 2), 60, what="flaky retried")
        assert set(flaky) == keys  # two 500s, each retried with its key
        slow = wait_until(lambda: answered("/slow", len(keys) + 1), 60, what="slow retried")
        assert set(slow) == keys  # the first post timed out and was sent again
        time.sleep(3)  # no further posts once each was answered
        assert len(receiver.bodies("/flaky")) == len(keys) + 2
        assert len(receiver.bodies("/slow")) == len(keys) + 1
        assert len(receiver.bodies("/ok")) == len(keys)
        assert all(header == body["key"] for _, body, header in receiver.posts)

        # the down receiver is given up after ALERT_RETRY_FOR_S, and health says so
        def given_up() -> dict[str, Any] | None:
            alerts = httpx.get(f"{stack.base_url}/api/health").json()["alerts"]
            return alerts if alerts["failed"] == len(keys) else None

        alerts = wait_until(given_up, 60, what="the down receiver's alerts given up")
        assert alerts["pending"] == 0 and alerts["delivered"] == 3 * len(keys)
        assert alerts["last_error_url"] == down and "ConnectError" in alerts["last_error"]
        assert alerts["receivers"] == 4
        # nothing waited on the receivers: the client logged at its own pace
        assert logging_took < 60
    finally:
        stack.stop()


def test_scanner_announces_new_runs_and_finished_sweeps_but_not_history(tmp_path: Path) -> None:
    """The scanner alone on a real SQLite store: runs that existed before alerts were on are
    read silently; a sweep's end is announced once, to the sweep's own receivers too."""
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    settings = Settings(alert_webhooks="http://hooks/all", public_url=PUBLIC_URL)
    config = {"method": "simsiam", "dataset": "digits", "epochs": 1}
    old, _ = run_store.create_run(db, config=config, request=config)
    _finish(db, old.id, "succeeded")
    time.sleep(0.01)
    assert scan_once(db, settings) == 0  # first pass: alerts start now, history is read

    sweep_request = {**config, "alerts": ["http://hooks/sweep"]}
    sweep, run_ids, _ = sweep_store.create_sweep(
        db,
        name="lr map",
        request=sweep_request,
        axes=[],
        seeds=[0, 1],
        points=[{}],
        runs=[NewSweepRun(0, config, {**config, "seed": seed}) for seed in (0, 1)],
        concurrency=2,
    )
    _finish(db, run_ids[0], "succeeded")
    scan_once(db, settings)
    # one run of two finished: the server-wide receiver hears of it, the sweep's does not yet
    assert [(key, url) for key, url, _ in _queued(db)] == [
        (f"run:{run_ids[0]}:succeeded", "http://hooks/all")
    ]
    _finish(db, run_ids[1], "failed")
    scan_once(db, settings)
    scan_once(db, settings)  # a second pass queues nothing twice
    queued = _queued(db)
    assert sorted((key, url) for key, url, _ in queued) == sorted(
        [
            (f"run:{run_ids[1]}:failed", "http://hooks/all"),
            (f"run:{run_ids[1]}:failed", "http://hooks/sweep"),
            (f"run:{run_ids[0]}:succeeded", "http://hooks/all"),
            (f"sweep:{sweep.id}:finished", "http://hooks/all"),
            (f"sweep:{sweep.id}:finished", "http://hooks/sweep"),
        ]
    )
    summary = next(body for key, _, body in queued if key.startswith("sweep:"))
    assert summary["sweep"]["runs"] == 2 and summary["sweep"]["url"].startswith(PUBLIC_URL)
    db.dispose()


def _finish(db: Database, run_id: str, status: RunStatus) -> None:
    with db.write() as session:
        run = lock_run(session, run_id)
        assert run is not None
        set_status(session, run, status, "test")


def _queued(db: Database) -> list[tuple[str, str, dict[str, Any]]]:
    with db.read() as session:
        return [(d.key, d.url, d.body) for d in session.query(AlertDelivery).all()]
