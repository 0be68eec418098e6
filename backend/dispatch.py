"""Getting runs to the workers: send a run's train task (and remember whether it went out),
the reaper pass, and the broker check, which the API and every worker process run on timers.

Each queued run's task is sent by one process only, whatever the number of processes: a
sender first claims the run (:func:`backend.store.leases.claim_unsent` marks it sent in the
transaction that selects it), then sends. If the sender dies between the two, the broker
check finds the task missing from Redis and sends it. The one way left to a duplicate (the
check reads the queue in the instant a worker moves the message to ``unacked``) is harmless:
a run is claimed by one worker only (:func:`backend.store.leases.claim_run`), others skip it.

Sweep policy: a sweep sends at most ``concurrency`` of its runs to the broker at a time
(``SWEEP_CONCURRENCY`` by default); the rest wait in the database, ``queued`` and unsent
(*held*: the reaper's sending pass leaves them alone). When one of them ends, the worker that
ran it releases the next (:func:`advance_sweep`, which claims it under the sweep's lock), and
every reaper pass tops up any sweep that is short, so a lost release costs at most
``REAPER_INTERVAL_S``. A single run launched meanwhile therefore waits behind at most
``concurrency`` runs of each sweep in the queue, never behind a whole sweep.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from sqlalchemy.exc import OperationalError

from backend.broker import (
    INGEST_QUEUE,
    INGEST_TASK,
    PROJECT_TASK,
    PROJECTION_QUEUE,
    TRAIN_CPU_QUEUE,
    TRAIN_GPU_QUEUE,
    TRAIN_QUEUE,
    TRAIN_TASK,
    WorkerInfo,
    registered_workers,
    send_ingest,
    send_train,
    train_queue_for,
)
from backend.deployment import RedisNames
from backend.projections import resend_projections
from backend.schemas import Waiting
from backend.settings import Settings
from backend.store import external, leases
from backend.store import runs as run_store
from backend.store import sweeps as sweep_store
from backend.store.database import Database
from backend.store.models import Run, now
from backend.store.runs import QueuePosition

log = logging.getLogger(__name__)

WAITING_FOR_GPU = "waiting for a GPU worker: the run asks for device 'cuda' and none is connected"


def able_workers(
    workers: list[WorkerInfo], method: str, device: str
) -> tuple[list[WorkerInfo], list[WorkerInfo]]:
    """Of the connected ``workers`` (as they describe themselves in Redis), those that take
    the train queue of a run on ``device``, and those of them that have ``method`` (each
    training worker lists the methods it can train, plugins included: workers/tasks.py)."""
    queue = train_queue_for(device)
    takers = [w for w in workers if queue in w.queues]
    return takers, [w for w in takers if method in (w.methods or [])]


def why_waiting(run: Run, position: QueuePosition, workers: list[WorkerInfo]) -> Waiting | None:
    """Why the queued ``run`` has not started, given where it stands in the queue and the
    deployment's connected ``workers`` (as they describe themselves in Redis); None when a
    free worker that can train it is about to take it. The one definition of the reasons:
    ``GET /api/runs/{id}`` shows it and the run's status events say it (a worker that hands
    back a run whose method it lacks too: workers/lifecycle.py)."""
    ahead = position.ahead
    if run.sweep_id is not None and run.enqueued_at is None and position.sweep_concurrency:
        detail = (
            f"held by its sweep, which sends {position.sweep_concurrency} of its runs to the "
            f"workers at a time; {position.sweep_out} of them "
            f"{'is' if position.sweep_out == 1 else 'are'} queued or running"
        )
        return Waiting(reason="sweep_concurrency", detail=detail, ahead=ahead)
    device = str((run.config or {}).get("device", "auto"))
    takers, able = able_workers(workers, run.method, device)
    if not takers and device == "cuda":
        return Waiting(reason="no_gpu_worker", detail=WAITING_FOR_GPU, ahead=ahead)
    if not takers:
        kind = "CPU training worker" if device == "cpu" else "training worker"
        detail = f"waiting for a {kind}: none is connected"
        return Waiting(reason="no_worker", detail=detail, ahead=ahead)
    if not able:
        detail = (
            f"waiting for a worker with method {run.method!r}: none of the {len(takers)} "
            "connected training workers has it (install its plugin on one)"
        )
        return Waiting(reason="no_worker_with_plugin", detail=detail, ahead=ahead)
    busy = sum(1 for w in able if w.running)
    if ahead == 0 and busy < len(able):
        return None
    workers_busy = _busy_workers(busy, len(able))
    detail = f"behind {_runs(ahead)}; {workers_busy}" if ahead else workers_busy
    return Waiting(reason="behind_queue", detail=detail, ahead=ahead)


def _runs(count: int) -> str:
    return f"{count} queued run{'' if count == 1 else 's'}"


def _busy_workers(busy: int, able: int) -> str:
    """How busy the ``able`` workers that can train a run are, in words: "the 1 worker that
    can train it is busy", "all 3 workers...", "1 of the 2 workers... is busy"."""
    if able == 1:
        return f"the 1 worker that can train it is {'busy' if busy else 'free'}"
    if busy == able:
        return f"all {able} workers that can train it are busy"
    return f"{busy} of the {able} workers that can train it {'is' if busy == 1 else 'are'} busy"


def waiting_of(db: Database, settings: Settings, run: Run) -> Waiting | None:
    """:func:`why_waiting` for a stored run, reading the workers from Redis; None when the run
    is not queued or Redis cannot tell."""
    if run.status != "queued" or run.source is not None:
        return None
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        workers = registered_workers(client, RedisNames.of(db))
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    return why_waiting(run, run_store.queue_position(db, run), workers)


def _note_waiting_for_gpu(db: Database, settings: Settings, run_id: str) -> None:
    """Tell a sent run's viewers when it waits for a GPU worker: the first to join takes it."""
    run = run_store.get_run(db, run_id)
    waiting = waiting_of(db, settings, run) if run is not None else None
    if waiting is not None and waiting.reason == "no_gpu_worker":
        run_store.note_queued_reason(db, run_id, waiting.detail)


def enqueue_run(db: Database, celery: Celery, settings: Settings, run_id: str) -> bool:
    """Send the train task of a run not sent yet (new, or given back by its worker) to its
    device's queue, claimed first so that a reaper pass running meanwhile does not send it
    too; False when it did not go out (the reaper retries). A run that needs a GPU while no
    GPU worker is connected stays queued with that reason on its page; the first GPU worker
    to join takes it."""
    claimed = leases.claim_unsent(db, sent_before=0.0, only=[run_id])
    if not claimed:
        return False  # another process claimed it first, and sends it
    device = claimed[0].device
    if not send_train(celery, run_id, device):
        leases.mark_unsent(db, [run_id])
        return False
    if device == "cuda":
        _note_waiting_for_gpu(db, settings, run_id)
    return True


# A cancelled run whose worker missed this many heartbeats ends cancelled (its worker is gone).
CANCEL_AFTER_BEATS = 3
SEND_BATCH = 1000  # runs claimed per transaction when sending a backlog


def send_unsent(
    db: Database, celery: Celery, *, sent_before: float, only: list[str] | None = None
) -> int:
    """Send the train task of every queued run not sent since ``sent_before`` (``only``:
    among these ids), each claimed first so no other process sends it too. Stops at the
    first failure (Redis down) and leaves the rest for the next pass. Returns how many went
    out."""
    sent = 0
    while True:
        batch = leases.claim_unsent(db, sent_before=sent_before, only=only, limit=SEND_BATCH)
        for index, item in enumerate(batch):
            if not send_train(celery, item.run_id, item.device):
                leases.mark_unsent(db, [b.run_id for b in batch[index:]])
                return sent
            sent += 1
        if len(batch) < SEND_BATCH:
            return sent


def advance_sweep(db: Database, celery: Celery, settings: Settings, sweep_id: str) -> list[str]:
    """Send the sweep's next held runs, up to its concurrency limit (claimed and marked sent
    by :func:`backend.store.sweeps.take_runs_to_send`); returns the ids that went out. A run
    whose send fails is held again (the next pass retries it)."""
    sent = []
    for item in sweep_store.take_runs_to_send(db, sweep_id):
        if not send_train(celery, item.run_id, item.device):
            leases.mark_unsent(db, [item.run_id])
            continue
        if item.device == "cuda":
            _note_waiting_for_gpu(db, settings, item.run_id)
        sent.append(item.run_id)
    return sent


def housekeeping(what: str, action: Callable[[], object]) -> None:
    """Run one housekeeping pass (the reaper, the broker check) for a loop that must go on
    whatever happens: a database that is down is one warning line, not a traceback each time;
    any other failure is logged with its traceback."""
    try:
        action()
    except OperationalError as exc:
        log.warning("%s skipped: database unreachable (%s)", what, exc.orig)
    except Exception:
        log.exception("%s failed", what)


def reap_once(db: Database, celery: Celery, settings: Settings) -> None:
    """Requeue or fail runs whose worker died; send the queued runs whose task never went
    out, and top up the sweeps.

    A run whose task did go out is never sent again here, however long it has waited: behind
    a long backlog that is normal, and a re-send per pass would add the whole backlog to the
    queue again every interval. Whether a sent task is really gone (Redis lost it, or its
    worker died before taking it) only the broker can tell: :class:`BrokerWatch` compares the
    two and re-sends what is missing (:func:`resend_lost`), ingest tasks included."""
    leases.reap(
        db,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        max_worker_losses=settings.max_worker_losses,
        cancel_timeout_s=CANCEL_AFTER_BEATS * settings.heartbeat_interval_s,
    )
    send_unsent(db, celery, sent_before=0.0)  # never sent (new, requeued, or Redis was down)
    for sweep_id in sweep_store.sweeps_with_held_runs(db):
        advance_sweep(db, celery, settings, sweep_id)


# The Redis lists of the queues (kombu adds one per priority step; unprioritised messages
# use the plain name) and the hash of messages delivered but not acknowledged, each under the
# deployment's broker prefix.
_PRIORITY_SEPARATOR = "\x06\x16"
_QUEUE_LISTS = [
    name
    for queue in (TRAIN_QUEUE, TRAIN_GPU_QUEUE, TRAIN_CPU_QUEUE, PROJECTION_QUEUE, INGEST_QUEUE)
    for name in (queue, *(f"{queue}{_PRIORITY_SEPARATOR}{step}" for step in (3, 6, 9)))
]
_UNACKED = "unacked"
_UNACKED_INDEX = "unacked_index"  # delivery tag -> when it was delivered (kombu's Redis QoS)
# A task sent less than this long before the broker was read may not be visible in it yet.
SEND_GRACE_S = 2.0


@dataclass
class BrokerTasks:
    """What Redis holds now (waiting in a queue, or delivered and not yet acknowledged)."""

    train: set[str] = field(default_factory=set)  # run ids
    projection: set[tuple[str, int]] = field(default_factory=set)  # (run id, epoch)
    ingest: set[str] = field(default_factory=set)  # external run ids


def _task_args(message: dict[str, Any]) -> tuple[str | None, list[Any]]:
    """A Celery message's task name and positional arguments."""
    try:
        args = json.loads(base64.b64decode(message["body"]))[0]
    except (KeyError, IndexError, TypeError, ValueError, binascii.Error):
        return None, []
    return message.get("headers", {}).get("task"), list(args)


def broker_tasks(
    client: redis.Redis, names: RedisNames, delivered_after: float = 0.0
) -> BrokerTasks:
    """The deployment's train, projection and ingest tasks in Redis now. A message delivered
    to a worker before ``delivered_after`` (UNIX seconds) and still unacknowledged does not
    count: its worker died before it took the run (a worker that took it acknowledges it when
    done, and the run is no longer queued meanwhile), and kombu would give it back only after
    the visibility timeout (hours)."""
    with client.pipeline(transaction=False) as pipe:
        for name in _QUEUE_LISTS:
            pipe.lrange(names.broker_key(name), 0, -1)
        pipe.hgetall(names.broker_key(_UNACKED))
        pipe.zrangebyscore(names.broker_key(_UNACKED_INDEX), delivered_after, "+inf")
        *lists, unacked, recent = pipe.execute()
    messages = [json.loads(raw) for items in lists for raw in items]
    live = set(recent)
    messages += [json.loads(raw)[0] for tag, raw in unacked.items() if tag in live]
    found = BrokerTasks()
    for message in messages:
        task, args = _task_args(message)
        if task == TRAIN_TASK and args:
            found.train.add(str(args[0]))
        elif task == PROJECT_TASK and len(args) >= 2:
            found.projection.add((str(args[0]), int(args[1])))
        elif task == INGEST_TASK and args:
            found.ingest.add(str(args[0]))
    return found


def resend_lost(db: Database, celery: Celery, settings: Settings, client: redis.Redis) -> int:
    """Queued runs that the store says were sent but whose task is not in Redis (a Redis
    restarted without persistence, a flushed database, a worker that died holding it for
    ``REQUEUE_QUEUED_AFTER_S`` without taking the run) are sent again, and so are the ingest
    passes of external runs whose uploads wait with no ingest task in Redis, and the
    projections that were never sent or whose task is gone. Each is claimed first (one
    process sends it). Returns how many."""
    snapshot = now()
    in_broker = broker_tasks(
        client, RedisNames.of(db), delivered_after=snapshot - settings.requeue_queued_after_s
    )
    queued = run_store.queued_sent_before(db, snapshot - SEND_GRACE_S)
    lost = [r for r in queued if r not in in_broker.train]
    sent = 0
    if lost:
        sent = send_unsent(db, celery, sent_before=snapshot - SEND_GRACE_S, only=lost)
        log.warning("re-sent %d of %d queued runs whose task was not in Redis", sent, len(lost))
    waiting = external.runs_needing_ingest(db, snapshot - SEND_GRACE_S)
    ingest_lost = [r for r in waiting if r not in in_broker.ingest]
    for run_id in external.claim_ingest_resend(db, ingest_lost, snapshot - SEND_GRACE_S):
        if not send_ingest(celery, run_id):
            break  # Redis is down: the check after it comes back sends the rest
        sent += 1
        log.warning("re-sent the ingest pass of external run %s (not in Redis)", run_id)
    return sent + resend_projections(
        db, celery, settings, in_broker.projection, sent_before=snapshot - SEND_GRACE_S
    )


class BrokerWatch:
    """Runs :func:`resend_lost` every ``BROKER_CHECK_INTERVAL_S``, and at once when Redis
    comes back (reachable again, or another server: its ``run_id`` changed after a restart).
    Call :meth:`poll` every couple of seconds; it costs one ``INFO`` between checks."""

    def __init__(self, db: Database, celery: Celery, settings: Settings) -> None:
        self.db = db
        self.celery = celery
        self.settings = settings
        self.interval_s = settings.broker_check_interval_s
        self.client = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=1, socket_timeout=5
        )
        self._server: str | None = None
        self._next_check = 0.0

    def poll(self) -> int:
        try:
            server = str(self.client.info("server")["run_id"])
        except (redis.RedisError, OSError):
            self._server = None
            return 0
        came_back = server != self._server
        self._server = server
        if not came_back and time.monotonic() < self._next_check:
            return 0
        # after an outage, once more soon: a task sent just before it was within the grace
        self._next_check = time.monotonic() + (SEND_GRACE_S if came_back else self.interval_s)
        try:
            return resend_lost(self.db, self.celery, self.settings, self.client)
        except (redis.RedisError, OSError):
            self._server = None  # check again at the next poll
            return 0

    def close(self) -> None:
        self.client.close()
