"""The Celery app the service sends tasks with, the task and queue names, and one way to send.

Tasks carry JSON only. Training runs are routed by the device they ask for: ``train.gpu``
(``device: "cuda"``, consumed only by GPU workers), ``train.cpu`` (``device: "cpu"``, CPU
workers) and ``train`` (``device: "auto"``, every training worker: whichever is free first).
``projection`` carries the UMAP of one epoch's embeddings, ``ingest`` the diagnostics of
an external run's uploaded epochs (both consumed by the projection workers). The workers
register the task bodies on the same app (:mod:`workers.celery_app`); the API only ever
sends by name, so it never imports them.

Late acknowledgement (``acks_late`` + ``reject_on_worker_lost``) keeps a task in Redis until
its worker finishes it; the run heartbeat and the reaper handle a worker that dies without
telling anyone.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

import redis
from celery import Celery
from pydantic import BaseModel, Field, ValidationError

from backend.deployment import RedisNames
from backend.settings import Settings

log = logging.getLogger(__name__)

TRAIN_QUEUE = "train"
TRAIN_GPU_QUEUE = "train.gpu"
TRAIN_CPU_QUEUE = "train.cpu"
PROJECTION_QUEUE = "projection"
INGEST_QUEUE = "ingest"  # external runs' uploads -> diagnostics (ingest, projection workers)
WORKER_KEY_TTL_S = 10  # a worker's registry entry outlives it by at most this


def train_queue_for(device: str) -> str:
    """The queue of a run that asked for ``device`` ("auto" | "cpu" | "cuda")."""
    return {"cuda": TRAIN_GPU_QUEUE, "cpu": TRAIN_CPU_QUEUE}.get(device, TRAIN_QUEUE)


def training_queues(has_gpu: bool) -> list[str]:
    """What a training worker consumes: its own device's queue, then the "either" queue."""
    return [TRAIN_GPU_QUEUE if has_gpu else TRAIN_CPU_QUEUE, TRAIN_QUEUE]


# What a worker announces is read by servers of other releases too: fields they do not know
# are ignored (pydantic's default), not refused.
class WorkerDevice(BaseModel):
    """What a training worker trains on."""

    kind: Literal["cuda", "cpu"]
    name: str = Field(description="The card's name, or the CPU's.")
    memory_gib: float | None = Field(description="The card's memory; None on the CPU.")
    torch: str
    cuda: str | None
    visible_devices: str | None = Field(None, description="Its CUDA_VISIBLE_DEVICES.")


class WorkerInfo(BaseModel):
    """What a worker announces in Redis every few seconds (workers/tasks.py)."""

    id: str = Field(description="host:pid")
    queues: list[str]
    pid: int
    started_at: float = Field(description="UNIX seconds.")
    device: WorkerDevice | None = Field(None, description="None for a projection worker.")
    running: str | None = Field(None, description="The run it trains now.")
    methods: list[str] | None = Field(
        None, description="The methods it can train, plugins included."
    )


def registered_workers(client: redis.Redis, names: RedisNames) -> list[WorkerInfo]:
    """The deployment's workers alive now, as they describe themselves (an entry that is not
    a WorkerInfo is left out, with a log line)."""
    keys = list(client.scan_iter(match=names.worker_key("*"), count=200))
    workers = []
    for value in client.mget(keys) if keys else []:
        if not value:
            continue
        try:
            workers.append(WorkerInfo.model_validate_json(value))
        except ValidationError as exc:
            log.warning("a worker's announcement is not readable, left out: %s", exc)
    return workers


TRAIN_TASK = "collapse_lab.train_run"
PROJECT_TASK = "collapse_lab.project_embeddings"
INGEST_TASK = "collapse_lab.ingest_external"


def make_celery(settings: Settings, names: RedisNames, include: tuple[str, ...] = ()) -> Celery:
    """A Celery app bound to the settings' Redis, every key of it under the deployment's
    prefix (backend/deployment.py); workers pass the modules of their tasks."""
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
            INGEST_TASK: {"queue": INGEST_QUEUE},
        },
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2,
        broker_transport_options={
            "visibility_timeout": 6 * 3600,
            "global_keyprefix": names.broker_prefix,
        },
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


def send_train(celery: Celery, run_id: str, device: str) -> bool:
    """Queue the run's training task on its device's queue: the one place a run is sent."""
    return send(celery, TRAIN_TASK, [run_id], train_queue_for(device))


def send_projection(celery: Celery, run_id: str, epoch: int, key: str) -> bool:
    return send(celery, PROJECT_TASK, [run_id, epoch, key], PROJECTION_QUEUE)


def send_ingest(celery: Celery, run_id: str) -> bool:
    """Have a worker measure the external run's pending uploads (and close it once finished)."""
    return send(celery, INGEST_TASK, [run_id], INGEST_QUEUE)
