"""Getting runs to the workers: send a run's train task (and remember whether it went out),
and the reaper pass that the API and every worker process run on a timer."""

from __future__ import annotations

from celery import Celery

from backend.broker import send_train
from backend.events import Publisher
from backend.settings import Settings
from backend.store import repository as repo
from backend.store.database import Database


def enqueue_run(db: Database, celery: Celery, run_id: str) -> bool:
    """Send the run's train task; remember whether it went out (the reaper retries)."""
    sent = send_train(celery, run_id)
    repo.mark_enqueued(db, run_id, sent)
    return sent


def reap_once(db: Database, publisher: Publisher, celery: Celery, settings: Settings) -> None:
    """Requeue or fail runs whose worker died, re-send queued runs whose task got lost."""
    result = repo.reap(
        db,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        max_worker_losses=settings.max_worker_losses,
        requeue_after_s=settings.requeue_queued_after_s,
    )
    publisher.publish(result.messages)
    for run_id in result.to_enqueue:
        enqueue_run(db, celery, run_id)
