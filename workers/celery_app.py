"""The Celery application: JSON-only tasks on Redis, two queues.

- ``train``: one training run per task (``collapse_lab.train_run``); run these workers with
  ``--pool solo`` (the run trains in the worker process itself, so killing the worker stops
  the run) and ``--concurrency 1``.
- ``projection``: UMAP of one epoch's embeddings (``collapse_lab.project_embeddings``), in
  separate workers so projections never delay training.

Late acknowledgement (``acks_late`` + ``reject_on_worker_lost``) keeps a task in Redis until
its worker finishes it; the run heartbeat and the reaper (see ``backend.execution``) handle a
worker that dies without telling anyone.

Start a worker::

    celery -A workers.celery_app worker -Q train --pool solo --concurrency 1
    celery -A workers.celery_app worker -Q projection --pool solo --concurrency 1
"""

from __future__ import annotations

from celery import Celery

from backend.settings import Settings, get_settings

TRAIN_QUEUE = "train"
PROJECTION_QUEUE = "projection"


def make_celery(settings: Settings) -> Celery:
    """A Celery app bound to the settings' Redis (the API uses one to send tasks)."""
    celery = Celery("collapse_lab", broker=settings.redis_url, include=["workers.tasks"])
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
            "collapse_lab.train_run": {"queue": TRAIN_QUEUE},
            "collapse_lab.project_embeddings": {"queue": PROJECTION_QUEUE},
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={"visibility_timeout": 6 * 3600},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
    )
    return celery


app = make_celery(get_settings())
