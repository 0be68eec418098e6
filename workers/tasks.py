"""Celery tasks: thin wrappers that load the run, call the engine and report.

The work itself lives in :mod:`workers.lifecycle` (claim, heartbeat, hooks, finish). This
module also runs, in every worker process, a small background thread that advertises the
worker in Redis (``GET /api/health`` counts them) and runs the reaper and the broker check,
so that runs orphaned by a dead worker, or whose task Redis lost, are requeued even when no
API process is up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from functools import lru_cache, partial
from typing import Any

import numpy as np
import redis
from celery import signals

from backend.broker import (
    INGEST_TASK,
    PROJECT_TASK,
    PROJECTION_QUEUE,
    TRAIN_QUEUE,
    TRAIN_TASK,
    WORKER_KEY_TTL_S,
    WorkerDevice,
    WorkerInfo,
)
from backend.dispatch import BrokerWatch, housekeeping, reap_once
from backend.events import Publisher
from contract import METHOD_SPECS
from workers.celery_app import app, database, names, settings
from workers.engine.devices import describe_device
from workers.engine.projection import project
from workers.ingest import execute_ingest
from workers.lifecycle import (
    SHUTTING_DOWN,
    WorkerContext,
    execute_projection,
    execute_run,
    worker_identity,
)

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def context() -> WorkerContext:
    """This worker process's database, publisher and Redis client (built on first use)."""
    publisher = Publisher(settings.redis_url, names.channel)
    database.on_commit = publisher.publish  # the store's events go out as each write commits
    return WorkerContext(
        settings=settings,
        db=database,  # migrated by workers.celery_app, which read the deployment id from it
        publisher=publisher,
        redis=redis.Redis.from_url(settings.redis_url, socket_connect_timeout=1, socket_timeout=5),
        celery=app,
        names=names,
        worker_id=worker_identity(),
    )


@app.task(name=TRAIN_TASK, acks_late=True, reject_on_worker_lost=True)
def train_run(run_id: str) -> str:
    """Train the run ``run_id`` (queue ``train``)."""
    return execute_run(context(), run_id)


@app.task(
    name=PROJECT_TASK,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(RuntimeError,),
    retry_backoff=2,
    max_retries=5,
)
def project_embeddings(run_id: str, epoch: int, key: str) -> str:
    """Project the embeddings stored at Redis ``key`` for ``epoch`` (queue ``projection``)."""
    return execute_projection(context(), run_id, epoch, key)


@app.task(name=INGEST_TASK, acks_late=True, reject_on_worker_lost=True)
def ingest_external(run_id: str) -> str:
    """Measure an external run's pending uploads; close it once finished (queue ``ingest``)."""
    return execute_ingest(context(), run_id)


def _housekeeping(queues: list[str]) -> None:
    ctx = context()
    key = ctx.names.worker_key(ctx.worker_id)
    started_at = time.time()
    # only training workers describe their device: reading it initialises CUDA
    device = None
    if any(q.startswith(TRAIN_QUEUE) for q in queues):
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        device = WorkerDevice(**describe_device(), visible_devices=visible)
    next_reap = 0.0
    watch = BrokerWatch(ctx.db, ctx.celery, ctx.settings)
    while not SHUTTING_DOWN.is_set():
        info = WorkerInfo(
            id=ctx.worker_id,
            queues=queues,
            pid=os.getpid(),
            started_at=started_at,
            device=device,
            running=ctx.running,
            methods=sorted(METHOD_SPECS),  # plugins included: what this worker can train
        )
        try:
            ctx.redis.set(key, info.model_dump_json(), ex=WORKER_KEY_TTL_S)
        except (redis.RedisError, OSError) as exc:
            log.debug("worker registration failed: %s", exc)
        if time.monotonic() >= next_reap:
            next_reap = time.monotonic() + ctx.settings.reaper_interval_s
            reap = partial(reap_once, ctx.db, ctx.celery, ctx.settings)
            housekeeping("reaper pass", reap)
        housekeeping("broker check", watch.poll)
        SHUTTING_DOWN.wait(min(2.0, ctx.settings.reaper_interval_s))
    watch.close()
    with contextlib.suppress(redis.RedisError, OSError):
        ctx.redis.delete(key)


HOUSEKEEPERS: list[threading.Thread] = []  # this process's housekeeping thread, once ready
HOUSEKEEPING_STOP_S = 10.0  # a reaper pass or broker check under way, then the key's removal


@signals.worker_ready.connect
def _on_worker_ready(sender: Any = None, **_: Any) -> None:
    try:
        queues = sorted(q.name for q in sender.task_consumer.queues)
    except AttributeError:
        queues = [TRAIN_QUEUE, PROJECTION_QUEUE]
    context()
    housekeeper = threading.Thread(
        target=_housekeeping, args=(queues,), name="worker-housekeeping", daemon=True
    )
    HOUSEKEEPERS.append(housekeeper)
    housekeeper.start()
    if PROJECTION_QUEUE in queues and not any(q.startswith(TRAIN_QUEUE) for q in queues):
        os.nice(10)  # UMAP yields the CPU to training on shared machines
        # in the background: the signal handler of a warm shutdown only sets a flag, which
        # the consumer loop reads once this handler has returned, so a worker stopped while
        # compiling (a minute on a loaded machine with numba's cache still empty) stayed up
        WARM_UP.start()


def warm_up_projection() -> None:
    """Compile UMAP's numba kernels now rather than on the first run's first epoch."""
    started = time.monotonic()
    sample = np.random.default_rng(0).standard_normal((300, 16)).astype(np.float32)
    project(sample, None, seed=0)
    log.info("projection warmed up in %.1f s", time.monotonic() - started)


WARM_UP = threading.Thread(target=warm_up_projection, name="projection-warm-up", daemon=True)


@signals.worker_shutting_down.connect
def _on_worker_shutting_down(**_: Any) -> None:
    SHUTTING_DOWN.set()


@signals.worker_shutdown.connect
def _on_worker_shutdown(**_: Any) -> None:
    """Once the worker has stopped consuming and handed its tasks back: if UMAP's kernels are
    still compiling, leave without finalizing the interpreter. Finalizing under a daemon
    thread that is inside LLVM (which numba calls with the GIL released) or that holds the
    log's lock can abort the process: a CI run saw such a worker die of SIGABRT.

    The housekeeping thread is waited for first: it stops at SHUTTING_DOWN and removes the
    worker's key, so ``GET /api/health`` stops counting the worker at once."""
    for housekeeper in HOUSEKEEPERS:
        housekeeper.join(HOUSEKEEPING_STOP_S)
    if not WARM_UP.is_alive():
        return
    log.info("projection warm-up still compiling: exiting without waiting for it")
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(0)
