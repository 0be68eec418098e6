"""Alerts end to end: a real API and workers, runs logged by the real client, launched over
HTTP and swept, and real HTTP receivers on loopback — one that answers at once, one that
answers 500 twice, one too slow for the first post (never sent it again: it may have it),
one slow on every post, and one that is down; and the webhook URLs kept from every
reader."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import numpy as np
import pytest
from collapse_lab import Monitor

from backend.alerts import receiver_label, scan_once, sweep_outcomes
from backend.settings import Settings
from backend.store import alerts as alert_store
from backend.store import epochs as epoch_store
from backend.store import external as external_store
from backend.store import runs as run_store
from backend.store import sweeps as sweep_store
from backend.store.database import Database
from backend.store.eventlog import lock_run, set_status
from backend.store.models import AlertDelivery, Run
from backend.store.sweeps import NewSweepRun
from contract import EpochRecord, RunStatus
from tests.service.stack import TINY_RUN, RedisServer, ServiceStack, free_port, wait_until
from workers.engine.probe import probe_epoch_record, verdicts_revised_by

PUBLIC_URL = "http://lab.example:8000"
SLUGGISH_S = 9.0  # /sluggish answers after this, within the sender's timeout (15 s below)
# How soon after it was queued a receiver gets its alert while /sluggish holds a post open:
# one scan pass and one post on loopback, with room for a loaded 2-core machine.
PROMPT_S = 4.0
# Two posts that go out together reach their receivers in either order, this far apart.
SIMULTANEOUS_S = 1.0


@dataclass
class Post:
    path: str
    body: dict[str, Any]
    key: str  # the Idempotency-Key header
    arrived: float  # UNIX seconds, as the store's created_at
    answered: float | None = None


class Receiver:
    """A webhook receiver: records every post; ``/flaky`` answers 500 twice, ``/slow``
    sleeps past the sender's timeout on its first post, ``/sluggish`` takes SLUGGISH_S over
    every post (and then answers 200)."""

    def __init__(self) -> None:
        self.posts: list[Post] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                post = Post(self.path, body, self.headers["Idempotency-Key"], time.time())
                with receiver.lock:
                    receiver.posts.append(post)
                    seen = sum(1 for p in receiver.posts if p.path == self.path)
                if self.path == "/slow" and seen == 1:
                    time.sleep(5)
                if self.path == "/sluggish":
                    time.sleep(SLUGGISH_S)
                status = 500 if self.path == "/flaky" and seen <= 2 else 200
                with contextlib.suppress(BrokenPipeError):  # the sender gave up waiting
                    self.send_response(status)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                post.answered = time.time()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def received(self, path: str) -> list[Post]:
        with self.lock:
            return [post for post in self.posts if post.path == path]

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [post.body for post in self.received(path)]

    def events(self, path: str) -> list[str]:
        return [body["event"] for body in self.bodies(path)]

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
            "ALERT_TIMEOUT_S": "2",  # /slow's first post takes 5 s; others answer at once
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
        # the end carries the numbers of the run's last epoch (collapsed to a point)
        assert finished["epoch"] == 3 and finished["numbers"]["effective_rank"] < 3
        keys = {b["key"] for b in bodies}
        assert len(keys) == 2

        # the failing receiver gets the same alerts, retried with the same key
        def answered(path: str, posts: int) -> list[str] | None:
            got = [b["key"] for b in receiver.bodies(path)]
            return got if len(got) >= posts else None

        flaky = wait_until(lambda: answered("/flaky", len(keys) + 2), 60, what="flaky retried")
        assert set(flaky) == keys  # two 500s, each retried with its key
        slow = wait_until(lambda: answered("/slow", len(keys)), 60, what="slow's alerts")
        assert sorted(slow) == sorted(keys)  # the post that timed out was not sent again
        time.sleep(6)  # no further posts: the backoff after a first failure is 2-4 s
        assert len(receiver.bodies("/flaky")) == len(keys) + 2
        assert len(receiver.bodies("/slow")) == len(keys)
        assert len(receiver.bodies("/ok")) == len(keys)
        assert all(post.key == post.body["key"] for post in receiver.posts)

        # the down receiver is given up after ALERT_RETRY_FOR_S, and health says so; the
        # slow receiver's first alert was given up when it timed out (it may have it)
        def given_up() -> dict[str, Any] | None:
            alerts = httpx.get(f"{stack.base_url}/api/health").json()["alerts"]
            return alerts if alerts["failed"] == len(keys) + 1 else None

        alerts = wait_until(given_up, 60, what="the down receiver's alerts given up")
        assert alerts["pending"] == 0 and alerts["delivered"] == 3 * len(keys) - 1
        assert "ConnectError" in alerts["last_error"]
        db = Database(stack.database_url)
        with db.read() as session:
            (unanswered,) = session.query(AlertDelivery).filter(
                AlertDelivery.url == f"{receiver.url}/slow", AlertDelivery.failed_at.is_not(None)
            )
            assert unanswered.attempts == 1 and unanswered.key == slow[0]
            assert "ReadTimeout" in (unanswered.last_error or "")
            assert "not sent again" in (unanswered.last_error or "")
        db.dispose()
        # a webhook URL is a secret: health names the receiver by scheme and host alone
        assert alerts["last_error_receiver"] == receiver_label(down)
        assert alerts["last_error_receiver"].startswith(down.removesuffix("/down") + " #")
        assert "/down" not in httpx.get(f"{stack.base_url}/api/health").text
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
    old = run_store.create_run(db, config=config, request=config)
    _finish(db, old.id, "succeeded")
    time.sleep(0.01)
    assert scan_once(db, settings) == 0  # first pass: alerts start now, history is read

    sweep_request = {**config, "alerts": ["http://hooks/sweep"]}
    sweep, run_ids = sweep_store.create_sweep(
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
    assert [(_unseq(key), url) for key, url, *_ in _queued(db)] == [
        (f"run:{run_ids[0]}:succeeded", "http://hooks/all")
    ]
    _finish(db, run_ids[1], "failed")
    scan_once(db, settings)
    scan_once(db, settings)  # a second pass queues nothing twice
    queued = _queued(db)
    assert sorted((_unseq(key), url) for key, url, *_ in queued) == sorted(
        [
            (f"run:{run_ids[1]}:failed", "http://hooks/all"),
            (f"run:{run_ids[1]}:failed", "http://hooks/sweep"),
            (f"run:{run_ids[0]}:succeeded", "http://hooks/all"),
            (f"sweep:{sweep.id}:finished", "http://hooks/all"),
            (f"sweep:{sweep.id}:finished", "http://hooks/sweep"),
        ]
    )
    summary = next(body for key, _, body, _ in queued if key.startswith("sweep:"))
    assert summary["sweep"]["runs"] == 2 and summary["sweep"]["url"].startswith(PUBLIC_URL)
    db.dispose()


def _unseq(key: str) -> str:
    """An alert key without its event seq: ``run:<id>:<seq>:<event>`` -> ``run:<id>:<event>``."""
    parts = key.split(":")
    return ":".join(parts[:2] + parts[3:]) if parts[0] == "run" else key


def test_a_reopened_run_that_fails_or_finishes_again_is_announced_again(
    tmp_path: Path,
) -> None:
    """A preempted job's run failed, reopened by its requeued job (resume key), trained an
    epoch and failed at the next preemption, reopened again and finished: each end is an
    alert of its own, with the numbers of its last epoch. Reopened by a late sync of an
    offline copy and closed again as it was, the run has nothing new to tell: no alert."""
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    settings = Settings(alert_webhooks="http://hooks/all", public_url=PUBLIC_URL)
    scan_once(db, settings)  # alerts start before the run exists
    registration = {"name": "preempted", "resume_key": "slurm::81:preempted:abc"}
    run = external_store.register_run(db, "first-try", registration).run
    rng = np.random.default_rng(0)
    history: list[EpochRecord] = []
    tries = (("second-try", "failed"), ("third-try", "failed"), ("late-sync", "succeeded"))
    for epoch, (try_, status) in enumerate(tries):
        history.append(probe_epoch_record(epoch, rng.normal(size=(256, 32)), history=history))
        assert epoch_store.record_epoch(db, run.id, history[-1])
        _finish(db, run.id, cast(RunStatus, status))
        scan_once(db, settings)
        again = external_store.register_run(db, try_, registration)
        assert again.resumed and again.run.id == run.id and again.run.status == "running"
        scan_once(db, settings)
    _finish(db, run.id, "succeeded")  # the late sync closes it as it was
    scan_once(db, settings)
    queued = _queued(db)
    assert [body["event"] for _, _, body, _ in queued] == ["failed", "failed", "succeeded"]
    assert [body["epoch"] for _, _, body, _ in queued] == [0, 1, 2]
    assert all(body["numbers"]["effective_rank"] > 10 for _, _, body, _ in queued)
    assert len({key for key, *_ in queued}) == 3
    # an ending that differs from the last one told is told: here, cancelled
    external_store.register_run(db, "fourth-try", registration)
    _finish(db, run.id, "cancelled")
    scan_once(db, settings)
    assert [body["event"] for _, _, body, _ in _queued(db)][-1] == "cancelled"
    db.dispose()


def test_an_epoch_uploaded_after_later_ones_announces_nothing_of_the_past(
    tmp_path: Path,
) -> None:
    """Epochs 3-5 of a run collapsed to a point arrive first (the part trained online after
    a requeue), epoch 0 last (the offline part, synced later). Epoch 0 judged alone is
    healthy: its record must not announce a recovery, and the run's verdict, revised over the
    whole history as the ingest worker revises it, stays complete collapse: one alert."""
    db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    db.migrate()
    settings = Settings(alert_webhooks="http://hooks/all", public_url=PUBLIC_URL)
    scan_once(db, settings)  # alerts start before the run exists
    config = {"method": "simsiam", "dataset": "digits", "epochs": 6}
    run = run_store.create_run(db, config=config, request=config)
    rng = np.random.default_rng(0)
    spread, point = rng.normal(size=(256, 32)), rng.normal(size=32)
    history: list[EpochRecord] = []
    for epoch in (3, 4, 5):
        z = point + 1e-4 * rng.normal(size=(256, 32))
        history.append(probe_epoch_record(epoch, z, history=history))
        assert epoch_store.record_epoch(db, run.id, history[-1])
    scan_once(db, settings)
    assert [body["event"] for _, _, body, _ in _queued(db)] == ["collapse_onset"]

    late = probe_epoch_record(0, spread, history=history)
    assert late.verdict is not None and late.verdict.kind == "healthy"  # judged alone
    assert epoch_store.record_epoch(db, run.id, late)
    stale = epoch_store.stale_verdicts(db, run.id)
    assert stale is not None and stale.since == 0
    revised = verdicts_revised_by(stale.history, stale.since)
    assert [r.epoch for r in revised] == [3, 4, 5]  # the baseline changed: so did the reason
    epoch_store.revise_verdicts(db, run.id, stale, revised)
    assert epoch_store.stale_verdicts(db, run.id) is None
    scan_once(db, settings)
    assert [body["event"] for _, _, body, _ in _queued(db)] == ["collapse_onset"]
    stored = run_store.get_run(db, run.id)
    assert stored is not None and stored.verdict_kind == "complete_collapse"
    assert stored.verdict == revised[-1].model_dump(mode="json")["verdict"]
    records = epoch_store.typed_epoch_records(db, run.id)
    assert [r.verdict.kind for r in records if r.verdict] == ["healthy"] + ["complete_collapse"] * 3
    assert records[1].verdict == revised[0].verdict
    db.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_claim_takes_the_oldest_alert_of_each_receiver_with_no_post_in_flight(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """The senders' claim on a real store (PostgreSQL locks the rows it claims: its query
    differs): one delivery per receiver, the oldest first, none for a receiver that has a
    post in flight or whose oldest waits out a retry, none claimed twice."""
    if backend == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'store.db'}")
    else:
        db = Database(request.getfixturevalue("postgres_url"))
    db.migrate()
    with db.write() as session:
        session.query(AlertDelivery).delete()  # this session's database: none of another test
    stamp = time.time() - 10
    with db.write() as session:
        session.add_all(
            AlertDelivery(
                key=f"run:x:{i}:{url}",
                url=url,
                body={},
                created_at=stamp,
                attempts=0,
                next_attempt_at=stamp + i,
            )
            for i, url in enumerate(
                ["http://a/1", "http://b/1", "http://a/1", "http://c/1", "http://b/1", "http://a/1"]
            )
        )
    claimed = alert_store.claim_due(db, 10)
    assert [(d.url, d.key) for d in claimed] == [
        ("http://a/1", "run:x:0:http://a/1"),
        ("http://b/1", "run:x:1:http://b/1"),
        ("http://c/1", "run:x:3:http://c/1"),
    ]
    # while each receiver's oldest is claimed (a post in flight, in any process): nothing
    assert alert_store.claim_due(db, 10) == []
    first = {d.url: d for d in claimed}
    alert_store.mark_delivered(db, first["http://a/1"].id)  # a's next, at most one
    assert [d.key for d in alert_store.claim_due(db, 1)] == ["run:x:2:http://a/1"]
    # b's first failed and waits out its backoff: b's next, due, does not overtake it
    alert_store.mark_attempt_failed(db, first["http://b/1"].id, "HTTP 500", time.time() + 60)
    assert alert_store.claim_due(db, 10) == []
    # a claim left by a sender that died is taken back once stale, not before; none for a
    # receiver with a post in flight in this process
    stale = alert_store.claim_due(db, 10, {"http://c/1"}, stale_after_s=0)
    assert [d.key for d in stale] == ["run:x:2:http://a/1"]
    db.dispose()


def _log_collapse_then_recovery(monitor: Monitor, receiver: Receiver) -> None:
    """Epoch 0 spread out; epochs 1 and 2 one point, logged with a DINO-style teacher and
    student (neither entropy signature) and an EMA momentum of 0 (the teacher is the student:
    the cause the verdict names); once the collapse was announced, epochs 3 and 4 spread out
    again."""
    rng = np.random.default_rng(0)
    n, d, k = 256, 32, 16
    labels = rng.integers(0, 4, n)
    point = rng.normal(size=d)
    logits = 2.0 * rng.normal(size=(n, k))
    probabilities = (np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)).astype(np.float32)
    internals = {
        "schedules": {"ema_momentum": 0.0},
        "teacher": probabilities,
        "student": probabilities,
    }
    for epoch in (0, 1, 2):
        scale = 1.0 if epoch == 0 else 1e-4
        z = ((point if epoch else 0) + scale * rng.normal(size=(n, d))).astype(np.float32)
        monitor.log_epoch(epoch, z, labels=labels, loss=-epoch, **internals)
    wait_until(lambda: "collapse_onset" in receiver.events("/monitor"), 120, what="the onset")
    for epoch in (3, 4):
        z = rng.normal(size=(n, d)).astype(np.float32)
        monitor.log_epoch(epoch, z, labels=labels, loss=-1.0, **internals)


@pytest.mark.slow
def test_runs_sweeps_and_monitors_tell_their_own_receivers_and_a_slow_one_holds_up_none(
    redis_server: RedisServer, receiver: Receiver, tmp_path: Path
) -> None:
    """No server-wide receiver: a run launched with ``alerts``, a sweep with its own and an
    external run (``Monitor(alerts=...)``) whose receivers are /monitor and /sluggish."""
    stack = ServiceStack(
        workdir=tmp_path,
        redis_url=redis_server.url.replace("/0", "/6"),
        database_url=f"sqlite:///{tmp_path / 'collapse_lab.db'}",
        extra_env={"ALERT_TIMEOUT_S": "15", "PUBLIC_URL": PUBLIC_URL},
    )
    try:
        stack.start_api()
        stack.start_worker("projection1", "projection")
        stack.start_worker("train1", "train")
        api = httpx.Client(base_url=stack.base_url, timeout=30)
        launched = api.post(
            "/api/runs", json={**TINY_RUN, "epochs": 2, "alerts": [f"{receiver.url}/run"]}
        )
        assert launched.status_code == 201, launched.text
        run_id = launched.json()["id"]
        swept = api.post(
            "/api/sweeps",
            json={
                "base": {**TINY_RUN, "epochs": 1},
                "grid": {"lr": [0.01, 0.02]},
                "alerts": [f"{receiver.url}/sweep"],
            },
        )
        assert swept.status_code == 201, swept.text
        sweep = swept.json()

        monitor = Monitor(
            stack.base_url,
            name="collapses-then-recovers",
            alerts=[f"{receiver.url}/monitor", f"{receiver.url}/sluggish"],
        )
        _log_collapse_then_recovery(monitor, receiver)
        monitor.record_stop(4, "the budget ran out")  # how the run ended, in its end alert
        assert monitor.finish(timeout=120)
        every_kind = ["collapse_onset", "cause", "recovery", "succeeded"]
        for path in ("/monitor", "/sluggish"):
            wait_until(lambda p=path: len(receiver.events(p)) >= 4, 120, what=f"{path}'s alerts")
        wait_until(lambda: "succeeded" in receiver.events("/run"), 300, what="the run's end")
        wait_until(lambda: "sweep_finished" in receiver.events("/sweep"), 300, what="its end")
        time.sleep(3)  # nothing more comes, nothing twice

        # each receiver got each of its alerts once, under its idempotency key
        for path in ("/monitor", "/sluggish", "/run", "/sweep"):
            keys = [post.key for post in receiver.received(path)]
            assert len(keys) == len(set(keys)), (path, keys)
            assert all(post.key == post.body["key"] for post in receiver.received(path))
        assert receiver.events("/monitor") == every_kind == receiver.events("/sluggish")
        onset, cause, recovery, finished = receiver.bodies("/monitor")
        assert {b["run"]["id"] for b in (onset, cause, recovery, finished)} == {monitor.run_id}
        assert onset["verdict"]["kind"] == "complete_collapse"
        assert cause["cause"]["guard"] == "target_network"
        assert "because of its target network" in cause["text"]
        assert recovery["verdict"]["kind"] == "healthy" and recovery["epoch"] == 3
        # the verdict's reason, a sentence of its own
        assert "is healthy again at epoch 3. At epoch 3 z " in recovery["text"]
        assert finished["run"]["status"] == "succeeded"
        # the end carries the numbers of the run's last epoch, spread out again
        assert finished["epoch"] == 4 and finished["numbers"]["effective_rank"] > 3
        # an external run has no method or dataset of the server's: none is named
        assert onset["text"].startswith("Run collapses-then-recovers: complete collapse")
        assert "external on external" not in finished["text"]
        assert finished["text"].startswith(
            "Run collapses-then-recovers finished: healthy. Finished by the client (the "
            "client stopped training after epoch 4: the budget ran out). At epoch 4 z "
        ), finished["text"]

        run_alerts = receiver.bodies("/run")
        assert {b["run"]["id"] for b in run_alerts} == {run_id}
        assert run_alerts[-1]["event"] == "succeeded"
        assert "(simsiam on digits) finished: " in run_alerts[-1]["text"]
        # the sweep's receiver: its end once, and its runs' troubles but not their successes
        sweep_alerts = receiver.bodies("/sweep")
        (summary,) = [b for b in sweep_alerts if b["event"] == "sweep_finished"]
        assert summary["sweep"]["id"] == sweep["id"] and summary["sweep"]["runs"] == 2
        assert summary["sweep"]["url"] == f"{PUBLIC_URL}/sweeps/{sweep['id']}"
        assert sum(summary["sweep"]["verdicts"].values()) == 2
        troubles = [b for b in sweep_alerts if b is not summary]
        assert all(b["event"] in ("collapse_onset", "cause", "failed") for b in troubles)
        assert {b["run"]["id"] for b in troubles} <= set(sweep["runs"])

        # /sluggish held a post open for SLUGGISH_S each time; /monitor's alerts came anyway,
        # one of another event while /sluggish still had PROMPT_S to go on its post (the cause
        # is queued with the onset: /monitor gets it while /sluggish holds the onset, maybe a
        # moment before that post reached /sluggish, as both go out at once; when the
        # recovery is queued depends on how busy the ingest worker is, so it may miss every
        # hold). A sender that waited on /sluggish would post the cause to /monitor only
        # after /sluggish answered the onset.
        db = Database(stack.database_url)
        queued = {(key, url): at for key, url, _, at in _queued(db)}
        db.dispose()
        monitor_url = f"{receiver.url}/monitor"
        waits = {
            p.body["event"]: p.arrived - queued[p.key, monitor_url]
            for p in receiver.received("/monitor")
        }
        assert max(waits.values()) < PROMPT_S, waits
        held = [
            (p.body["event"], p.arrived, p.answered or p.arrived)
            for p in receiver.received("/sluggish")
        ]
        arrived = [(p.body["event"], p.arrived) for p in receiver.received("/monitor")]
        assert any(
            event != held_event and start - SIMULTANEOUS_S <= at <= end - PROMPT_S
            for event, at in arrived
            for held_event, start, end in held
        ), (waits, held, arrived)
        api.close()
    finally:
        stack.stop()


def test_readers_never_see_the_webhook_urls_of_a_run_or_a_sweep(
    private_stack: ServiceStack,
) -> None:
    """A webhook URL lets whoever holds it post to the channel: kept with the run (the alert
    loop reads it from the store), never served, not even to the token."""
    secret = "https://hooks.example.com/services/T000/B000/not-for-readers"
    owner = {"Authorization": "Bearer s3cret-token"}
    with httpx.Client(base_url=private_stack.base_url, timeout=30, headers=owner) as client:
        run = client.post("/api/runs", json={**TINY_RUN, "alerts": [secret]}).json()
        external = client.post(
            "/api/external-runs", json={"name": "webhook holder", "alerts": [secret]}
        ).json()
        sweep = client.post(
            "/api/sweeps",
            json={
                "base": {**TINY_RUN, "alerts": [secret]},
                "grid": {"lr": [0.01, 0.02]},
                "alerts": [secret],
            },
        ).json()
        run_share = client.post("/api/shares", json={"runs": [run["id"], external["id"]]}).json()
        sweep_share = client.post(f"/api/sweeps/{sweep['id']}/share").json()
        try:
            shown = client.get(f"/api/runs/{run['id']}").json()
            assert shown["request"]["epochs"] == TINY_RUN["epochs"]  # the rest as sent
            assert "alerts" not in shown["request"]
            as_owner = [f"/api/runs/{run['id']}", f"/api/sweeps/{sweep['id']}", "/api/sweeps"]
            by_link = {
                run_share["token"]: [
                    f"/api/runs/{run['id']}",
                    f"/api/runs/{external['id']}",
                    f"/api/runs/{run['id']}/epochs.json",
                    f"/api/runs/{run['id']}/report.html",
                    f"/api/compare/epochs.json?runs={run['id']},{external['id']}",
                ],
                sweep_share["token"]: [
                    f"/api/sweeps/{sweep['id']}",
                    "/api/sweeps",
                    f"/api/runs/{sweep['runs'][0]}",
                    f"/api/sweeps/{sweep['id']}/report.html",
                ],
            }
            readings = [client.get(path) for path in as_owner] + [
                httpx.get(f"{private_stack.base_url}{path}", headers={"X-Share-Token": token})
                for token, paths in by_link.items()
                for path in paths
            ]
            for reading in readings:
                assert reading.status_code == 200, (reading.url, reading.text)
                assert "hooks.example.com" not in reading.text, reading.url
            db = Database(private_stack.database_url)
            with db.read() as session:
                for run_id in (run["id"], external["id"], sweep["runs"][0]):
                    stored = session.get(Run, run_id)
                    assert stored is not None and stored.request["alerts"] == [secret]
            db.dispose()
        finally:
            client.post(f"/api/sweeps/{sweep['id']}/cancel")
            client.post(f"/api/runs/{run['id']}/cancel")


def _finish(db: Database, run_id: str, status: RunStatus) -> None:
    with db.write() as session:
        run = lock_run(session, run_id)
        assert run is not None
        set_status(session, run, status, "test")


def _queued(db: Database) -> list[tuple[str, str, dict[str, Any], float]]:
    """(key, receiver, body, when it was queued) of every delivery."""
    with db.read() as session:
        return [(d.key, d.url, d.body, d.created_at) for d in session.query(AlertDelivery).all()]


def test_a_sweeps_summary_counts_a_run_cancelled_partway_as_cancelled() -> None:
    outcomes = sweep_outcomes(
        [
            ("succeeded", "complete_collapse"),
            ("cancelled", "healthy"),  # its verdict at epoch 2 of 6
            ("failed", None),
            ("succeeded", "healthy"),
        ]
    )
    assert outcomes == {"complete_collapse": 1, "cancelled": 1, "failed": 1, "healthy": 1}
