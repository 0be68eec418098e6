"""Getting runs to the workers: send a run's train task (and remember whether it went out),
and the reaper pass that the API and every worker process run on a timer."""

from __future__ import annotations

import redis
from celery import Celery

from backend.broker import TRAIN_GPU_QUEUE, registered_workers, send_train
from backend.events import Publisher
from backend.settings import Settings
from backend.store import leases
from backend.store import runs as run_store
from backend.store.database import Database

WAITING_FOR_GPU = "waiting for a GPU worker: the run asks for device 'cuda' and none is connected"


def gpu_worker_connected(settings: Settings) -> bool:
    """Whether a worker that consumes the GPU queue is alive (True when Redis cannot tell:
    the message waits in its queue either way)."""
    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=2)
    try:
        workers = registered_workers(client, settings.redis_url)
    except (redis.RedisError, OSError):
        return True
    finally:
        client.close()
    return any(TRAIN_GPU_QUEUE in worker.get("queues", []) for worker in workers)


def enqueue_run(
    db: Database, publisher: Publisher, celery: Celery, settings: Settings, run_id: str
) -> bool:
    """Send the run's train task to its device's queue; remember whether it went out (the
    reaper retries). A run that needs a GPU while no GPU worker is connected stays queued
    with that reason on its page; the first GPU worker to join takes it."""
    device = run_store.run_device(db, run_id) or "auto"
    sent = send_train(celery, run_id, device)
    run_store.mark_enqueued(db, run_id, sent)
    if sent and device == "cuda" and not gpu_worker_connected(settings):
        publisher.publish(run_store.note_queued_reason(db, run_id, WAITING_FOR_GPU))
    return sent


def reap_once(db: Database, publisher: Publisher, celery: Celery, settings: Settings) -> None:
    """Requeue or fail runs whose worker died, re-send queued runs whose task got lost."""
    result = leases.reap(
        db,
        heartbeat_timeout_s=settings.heartbeat_timeout_s,
        max_worker_losses=settings.max_worker_losses,
        requeue_after_s=settings.requeue_queued_after_s,
    )
    publisher.publish(result.messages)
    for run_id in result.to_enqueue:
        enqueue_run(db, publisher, celery, settings, run_id)
