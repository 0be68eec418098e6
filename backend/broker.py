"""The Celery app the service sends tasks with, the task and queue names, and one way to send.

Tasks carry JSON only. Two queues: ``train`` (one training run per task) and ``projection``
(UMAP of one epoch's embeddings). The workers register the task bodies on the same app
(:mod:`workers.celery_app`); the API only ever sends by name, so it never imports them.

Late acknowledgement (``acks_late`` + ``reject_on_worker_lost``) keeps a task in Redis until
its worker finishes it; the run heartbeat and the reaper handle a worker that dies without
telling anyone.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery

from backend.settings import Settings

log = logging.getLogger(__name__)

TRAIN_QUEUE = "train"
PROJECTION_QUEUE = "projection"
TRAIN_TASK = "collapse_lab.train_run"
PROJECT_TASK = "collapse_lab.project_embeddings"


def make_celery(settings: Settings, include: tuple[str, ...] = ()) -> Celery:
    """A Celery app bound to the settings' Redis; workers pass the modules of their tasks."""
    celery = Celery("collapse_lab", broker=settings.redis_url, include=list(include))
    celery.conf.update(
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue=TRAIN_QUEUE,
        task_routes={
            TRAIN_TASK: {"queue": TRAIN_QUEUE},
            PROJECT_TASK: {"queue": PROJECTION_QUEUE},
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={"visibility_timeout": 6 * 3600},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return celery


def send(celery: Celery, task: str, args: list[Any], queue: str) -> bool:
    """Send a task without blocking for long when Redis is down; False when it failed (the
    caller records that, and the reaper sends it again)."""
    try:
        celery.send_task(task, args=args, queue=queue, retry=False)
    except Exception as exc:  # kombu raises assorted connection errors
        log.warning("could not send %s%s: %s", task, args, exc)
        return False
    return True


def send_train(celery: Celery, run_id: str) -> bool:
    """Queue the run's training task: the one place a run is sent to the workers."""
    return send(celery, TRAIN_TASK, [run_id], TRAIN_QUEUE)


def send_projection(celery: Celery, run_id: str, epoch: int, key: str) -> bool:
    return send(celery, PROJECT_TASK, [run_id, epoch, key], PROJECTION_QUEUE)
