"""The worker side of a run's life (the glue where the store meets the engine): claim it,
train it with heartbeats, report, finish. Also: project one epoch's embeddings.

Guarantees (the service tests check each):
- **Never twice at once.** A run is claimed under its row lock and only when ``queued``; the
  claim sets a lease token that every heartbeat and the final status must present. If the
  reaper declared this worker dead (heartbeat older than ``HEARTBEAT_TIMEOUT_S``) and gave the
  run to another worker, the next heartbeat finds the lease gone and this worker stops.
- **Each epoch recorded exactly once.** The trainer writes the checkpoint before reporting an
  epoch; the store ignores repeats. A worker that died between the checkpoint and the
  database write is covered by :func:`reconcile_from_checkpoint` on resume.
- **Resume, not restart.** The run directory (``DATA_DIR/runs/<id>``) holds the checkpoint;
  ``train`` picks it up.
- **Cooperative cancel.** The heartbeat thread reads the cancel flag; ``should_stop`` turns
  true and the trainer stops between two steps.
- **Readable failures.** Dataset errors, NaN losses, out-of-memory and anything else end the
  run ``failed`` with a one-line reason. A run of a method this worker lacks (a plugin not
  installed here) goes back to the queue when another connected worker has it, and fails
  with that reason only when none has.
- **Sweeps move on.** When a run of a sweep ends, its worker sends the sweep's next held run
  (within the sweep's concurrency limit, :func:`backend.dispatch.advance_sweep`).
- **Clean shutdown.** A worker asked to stop (Ctrl-C, SIGTERM) stops its run between two
  steps and puts it back in the queue for the next worker, without counting a loss.

Embeddings for projections travel through Redis (float16, one key per epoch, 1 day TTL)
so the projection worker may run on another machine; the task itself carries only JSON. They
are also kept in the run directory until the projection is stored, so a projection that
could not be sent, or whose task Redis lost, is sent again (:mod:`backend.projections`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import redis
import torch
from celery import Celery
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from backend.broker import registered_workers, send_train
from backend.deployment import RedisNames
from backend.dispatch import able_workers, advance_sweep, enqueue_run, why_waiting
from backend.events import Publisher
from backend.projections import (
    EMBEDDING_TTL_S,
    forget_embeddings,
    keep_embeddings,
    load_embeddings,
    note_projection_failure,
    send_kept,
)
from backend.settings import Settings, probe_images_path
from backend.store import epochs as epoch_store
from backend.store import leases
from backend.store import runs as run_store
from backend.store.database import Database
from backend.store.eventlog import FINISHED, EventMessage
from contract import METHOD_SPECS, PLUGIN_ERRORS, TERMINAL_STATUSES, EpochRecord, RunConfig
from contract.datasets import DatasetError
from contract.strict import error_message
from workers.engine.checkpoint import load_checkpoint
from workers.engine.devices import describe_device
from workers.engine.errors import RunCancelled, TrainingError
from workers.engine.projection import project
from workers.engine.trainer import TrainHooks, train

log = logging.getLogger(__name__)

SHUTTING_DOWN = threading.Event()  # set by the Celery worker's shutdown signal


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerContext:
    """The long-lived things a worker process shares between tasks."""

    settings: Settings
    db: Database
    publisher: Publisher
    redis: redis.Redis
    celery: Celery
    names: RedisNames  # the deployment's keys in Redis
    worker_id: str
    running: str | None = None  # the run this worker trains now (shown by /api/health)


T = TypeVar("T")


def with_db_retry(action: Callable[[], T], attempts: int = 8) -> T:
    """Run a database action, retrying for ~30 s (backing off 0.5, 1, 2, 4, 8, 8, 8 s) while
    the database is unreachable; the last failure is raised. (It had 6 attempts: 15.5 s, half
    of what it promised.) Shorter than the default ``HEARTBEAT_TIMEOUT_S`` (45 s), so the
    reaper does not take a run from a worker that was only waiting for the database."""
    retrying = Retrying(
        retry=retry_if_exception_type(OperationalError),
        stop=stop_after_attempt(attempts),
        wait=wait_exponential(multiplier=0.5, max=8),
        reraise=True,
    )
    return retrying(action)


class RunSupervisor:
    """Background heartbeat for one claimed run; decides when the trainer must stop."""

    def __init__(self, context: WorkerContext, claim: leases.Claim) -> None:
        self.context = context
        self.claim = claim
        self.stop_reason: str | None = None  # "cancel" | "lease_lost" | "shutdown"
        self.progress: dict[str, Any] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="run-heartbeat", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._done.wait(self.context.settings.heartbeat_interval_s):
            self.beat()

    def beat(self) -> None:
        try:
            beat = leases.heartbeat(
                self.context.db, self.claim.run_id, self.claim.lease_token, self.progress
            )
        except OperationalError as exc:
            log.warning("heartbeat failed (database unreachable): %s", exc)
            return
        if not beat.owned:
            self.stop_reason = self.stop_reason or "lease_lost"
        elif beat.cancel_requested:
            self.stop_reason = self.stop_reason or "cancel"

    def should_stop(self) -> bool:
        if SHUTTING_DOWN.is_set() and self.stop_reason is None:
            self.stop_reason = "shutdown"
        return self.stop_reason is not None

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


class ServiceHooks:
    """The trainer's hooks, wired to the store, the event channel and the projection queue."""

    def __init__(self, context: WorkerContext, supervisor: RunSupervisor) -> None:
        self.context = context
        self.supervisor = supervisor
        self.run_id = supervisor.claim.run_id
        self.epochs_total = int(supervisor.claim.config["epochs"])
        self._last_progress = 0.0

    def on_epoch(self, record: EpochRecord) -> None:
        if record.placement is not None:
            record.placement.worker = self.context.worker_id
        with_db_retry(lambda: epoch_store.record_epoch(self.context.db, self.run_id, record))
        self.supervisor.progress = self._progress(record.epoch + 1, 0, 1, record.images_per_s)

    def _progress(self, epoch: int, step: int, steps: int, images_per_s: Any) -> dict[str, Any]:
        """``epoch`` is the epoch being trained (1-based), ``step`` of ``steps`` done."""
        done = epoch - 1 + (step / steps if steps else 0.0)
        return {
            "epoch": epoch,
            "step": step,
            "steps": steps,
            "images_per_s": images_per_s,
            "fraction": min(1.0, done / max(self.epochs_total, 1)),
        }

    def on_progress(self, epoch: int, step: int, steps: int, images_per_s: float) -> None:
        stamp = time.monotonic()
        interval = self.context.settings.progress_interval_s
        if step != steps and stamp - self._last_progress < interval:
            return
        self._last_progress = stamp
        progress = self._progress(epoch, step, steps, round(float(images_per_s), 2))
        self.supervisor.progress = progress
        self.context.publisher.publish([EventMessage(self.run_id, "progress", progress)])

    def on_embeddings(self, epoch: int, z: np.ndarray, labels: np.ndarray) -> None:
        queue_projection(self.context, self.run_id, epoch, z, labels)

    def on_probe_images(self, images: np.ndarray) -> None:
        """Keep the probe images (uint8 (N, C, S, S)) beside the checkpoint, where the API
        finds the picture behind each projection point without loading the dataset."""
        path = probe_images_path(self.context.settings.run_dir(self.run_id))
        if path.exists():
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp.npy")
        np.save(partial, np.ascontiguousarray(images, dtype=np.uint8))
        os.replace(partial, path)

    def should_stop(self) -> bool:
        return self.supervisor.should_stop()


FLOAT16_HEADROOM = 2.0**15  # below float16's largest value (65504), a power of two


def in_float16_range(z: np.ndarray) -> np.ndarray:
    """z (N, d), divided by the power of two that brings its largest magnitude under
    FLOAT16_HEADROOM when it is beyond (an unnormalised projector's output): the projection
    keeps z as float16, and its picture does not depend on z's scale (size = the spread of
    z/||z||, engine/projection.py), so the layout is the one of z itself."""
    peak = float(np.abs(z).max()) if z.size else 0.0
    if not np.isfinite(peak) or peak <= FLOAT16_HEADROOM:
        return z
    return z / 2.0 ** math.ceil(math.log2(peak / FLOAT16_HEADROOM))


def queue_projection(
    context: WorkerContext, run_id: str, epoch: int, z: np.ndarray, labels: np.ndarray
) -> None:
    """Hand z (N, d) and labels (N,) to the projection queue via Redis, keeping them in the
    run directory until the projection is stored (re-sent if this send fails)."""
    settings = context.settings
    z16 = np.ascontiguousarray(in_float16_range(z), dtype=np.float16)
    labels32 = np.ascontiguousarray(labels, dtype=np.int32)
    keep_embeddings(settings.run_dir(run_id), epoch, z16, labels32)
    key = context.names.embeddings_key(run_id, epoch)
    try:
        context.redis.hset(
            key,
            mapping={
                "z": z16.tobytes(),
                "labels": labels32.tobytes(),
                "shape": f"{z16.shape[0]},{z16.shape[1]}",
            },
        )
        context.redis.expire(key, EMBEDDING_TTL_S)
    except (redis.RedisError, OSError) as exc:
        log.warning("projection of epoch %d waits for Redis: %s", epoch, exc)
        return
    send_kept(context.celery, settings, context.names, run_id, epoch)


def reconcile_history(context: WorkerContext, run_id: str, history: list[EpochRecord]) -> None:
    """Record any epoch of ``history`` the store does not have yet (idempotent)."""
    stored = epoch_store.stored_epoch_numbers(context.db, run_id)
    for record in history:
        if record.epoch not in stored:
            epoch_store.record_epoch(context.db, run_id, record)


def reconcile_from_checkpoint(context: WorkerContext, run_id: str, run_dir: Path) -> int | None:
    """Before resuming: store the epochs the checkpoint has and the database lacks (a worker
    killed between writing the checkpoint and recording the epoch). Returns the checkpoint's
    epoch, or None without a checkpoint."""
    checkpoint = load_checkpoint(run_dir)
    if checkpoint is None:
        return None
    history = [EpochRecord.model_validate(record) for record in checkpoint.history]
    reconcile_history(context, run_id, history)
    return checkpoint.epoch


def describe_failure(exc: BaseException, config: RunConfig | None = None) -> str:
    """One readable line (at most 1,000 characters) for the run's error field."""
    message = " ".join(str(exc).split()) or exc.__class__.__name__
    if isinstance(exc, DatasetError):
        reason = f"dataset error: {message}"
    elif isinstance(exc, torch.OutOfMemoryError):
        device = describe_device()
        batch = f"batch_size {config.batch_size} " if config is not None else ""
        reason = (
            f"out of GPU memory: {batch}does not fit on {device['name']} "
            f"({device['memory_gib']} GiB); lower batch_size, image_size or width ({message})"
        )
    elif isinstance(exc, MemoryError):
        reason = "out of memory on the worker: lower batch_size, train_size or probe_size"
    elif isinstance(exc, TrainingError):
        reason = message
    else:
        reason = f"{exc.__class__.__name__}: {message}"
    return reason[:1000]


def _plugin_failures() -> str:
    return "; ".join(f"{e.plugin}: {e.error}" for e in PLUGIN_ERRORS)


def release_gpu_memory() -> None:
    """Give the card's cached memory back after a run (finished, failed or out of memory), so
    the next run on this worker starts from an empty card."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def execute_run(context: WorkerContext, run_id: str) -> str:
    """Claim and train one run to its end; returns a short outcome for the task result log.
    When it ended and belongs to a sweep, the sweep's next held run is sent."""
    outcome = _execute_claimed_run(context, run_id)
    if outcome in TERMINAL_STATUSES:
        run = run_store.get_run(context.db, run_id)
        if run is not None and run.sweep_id is not None:
            advance_sweep(context.db, context.celery, context.settings, run.sweep_id)
    return outcome


# How long a worker that lacks a run's method waits before handing the run back to the queue:
# a worker that has the method and is free takes it meanwhile; one that is busy leaves this
# worker to receive it again, at this pace (one read and one send, no status change).
HAND_BACK_DELAY_S = 2.0


def _hand_back(context: WorkerContext, run_id: str) -> str | None:
    """When this worker lacks the queued run's method and another connected worker has it
    (:func:`backend.dispatch.able_workers`), send the run's task again (for that worker)
    without claiming it: no attempt, no worker loss, no status change; the run's viewers are
    told why it still waits (:func:`backend.dispatch.why_waiting`: its workers are busy) unless
    one of them is about to take it. Returns the outcome, or None to go on with the claim
    (which fails the run with the reason when no connected worker has the method, or when
    Redis cannot tell)."""
    run = run_store.get_run(context.db, run_id)
    if run is None or run.status != "queued" or run.cancel_requested:
        return None
    method = str(run.config.get("method"))
    device = str(run.config.get("device", "auto"))
    if method in METHOD_SPECS:
        return None
    try:
        workers = registered_workers(context.redis, context.names)
    except (redis.RedisError, OSError):
        return None
    others = [w.id for w in able_workers(workers, method, device)[1]]
    if not others:
        return None
    waiting = why_waiting(run, run_store.queue_position(context.db, run), workers)
    if waiting is not None:
        run_store.note_queued_reason(context.db, run_id, waiting.detail)
    SHUTTING_DOWN.wait(HAND_BACK_DELAY_S)
    if not send_train(context.celery, run_id, device):
        leases.mark_unsent(context.db, [run_id])  # the reaper sends it once Redis is back
    log.info("run %s handed back: method %r is on %s, not here", run_id, method, others)
    return "handed back"


def _execute_claimed_run(context: WorkerContext, run_id: str) -> str:
    """Claim the run and train it (the outcome names how it ended)."""
    db = context.db
    if (handed_back := _hand_back(context, run_id)) is not None:
        return handed_back
    claim, why_not = with_db_retry(lambda: leases.claim_run(db, run_id, context.worker_id))
    if claim is None:
        log.info("run %s not started: %s", run_id, why_not)
        return f"skipped: {why_not}"
    method = str(claim.config.get("method"))
    try:
        if method not in METHOD_SPECS:
            raise LookupError(
                f"method {method!r} is not installed on worker {context.worker_id} (a method "
                "plugin: install its package there, or list its module in METHOD_PLUGINS"
                + (
                    f"; plugins that failed to load: {failed}"
                    if (failed := _plugin_failures())
                    else ""
                )
                + ")"
            )
        config = RunConfig.model_validate(claim.config)
    except LookupError as exc:
        leases.finish_run(db, run_id, claim.lease_token, "failed", error=str(exc))
        return "failed"
    except ValidationError as exc:
        error = f"the stored config no longer validates: {error_message(exc.errors()[0])}"
        leases.finish_run(db, run_id, claim.lease_token, "failed", error=error)
        return "failed"
    run_dir = context.settings.run_dir(run_id)
    context.running = run_id
    supervisor = RunSupervisor(context, claim)
    service_hooks = ServiceHooks(context, supervisor)
    hooks = TrainHooks(
        on_epoch=service_hooks.on_epoch,
        on_progress=service_hooks.on_progress,
        on_embeddings=service_hooks.on_embeddings,
        on_probe_images=service_hooks.on_probe_images,
        should_stop=service_hooks.should_stop,
    )
    lease = claim.lease_token
    try:
        reconcile_from_checkpoint(context, run_id, run_dir)
        result = train(
            config, data_root=context.settings.resolved_data_dir, run_dir=run_dir, hooks=hooks
        )
    except RunCancelled:
        reason = supervisor.stop_reason
        if reason == "cancel":
            leases.finish_run(db, run_id, lease, "cancelled", reason="cancelled on request")
            return "cancelled"
        if reason == "shutdown":
            leases.release_run(db, run_id, lease, "its worker shut down; waiting for another")
            enqueue_run(db, context.celery, context.settings, run_id)
            return "released"
        log.warning("run %s was taken over by another worker; stopping here", run_id)
        return "lease lost"
    except Exception as exc:
        error = describe_failure(exc, config)
        log.exception("run %s failed: %s", run_id, error)
        with_db_retry(lambda: leases.finish_run(db, run_id, lease, "failed", error=error))
        return "failed"
    finally:
        supervisor.close()
        context.running = None
        release_gpu_memory()
    reconcile_history(context, run_id, result.history)
    with_db_retry(
        lambda: leases.finish_run(
            db,
            run_id,
            lease,
            "succeeded",
            verdict=result.verdict.model_dump(mode="json"),
            reason=result.verdict.stopped_early or FINISHED,
        )
    )
    return "succeeded"


def _stored_embeddings(
    context: WorkerContext, run_id: str, epoch: int, key: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The epoch's (z float32, labels) from Redis, else from the run directory."""
    try:
        # a client without decode_responses: keys and values are bytes
        stored = cast(dict[bytes, bytes], context.redis.hgetall(key))
    except (redis.RedisError, OSError) as exc:
        stored = {}
        log.warning("embeddings of epoch %d read from the run directory: %s", epoch, exc)
    if stored:
        rows, dims = (int(v) for v in stored[b"shape"].decode().split(","))
        z = np.frombuffer(stored[b"z"], dtype=np.float16).reshape(rows, dims)
        return z.astype(np.float32), np.frombuffer(stored[b"labels"], dtype=np.int32)
    return load_embeddings(context.settings.run_dir(run_id), epoch)


def execute_projection(context: WorkerContext, run_id: str, epoch: int, key: str) -> str:
    """Project one epoch's embeddings to 2-D, aligned with the previous epoch, and store it."""
    embeddings = _stored_embeddings(context, run_id, epoch, key)
    if embeddings is None:
        return "embeddings expired"
    z, labels = embeddings
    rows = z.shape[0]
    run = run_store.get_run(context.db, run_id)
    if run is None:
        return "run deleted"
    previous_points = epoch_store.previous_projection(context.db, run_id, epoch)
    previous = None
    if previous_points is not None and len(previous_points) == rows:
        previous = np.asarray(previous_points, dtype=np.float32)
    try:
        points = project(z, previous, seed=int(run.config.get("seed", 0)))
    except Exception as exc:  # a failure here is the input's: retrying at once would repeat it
        run_dir = context.settings.run_dir(run_id)
        if note_projection_failure(run_dir, epoch):
            log.error("run %s, epoch %d: projection failed, not retried: %r", run_id, epoch, exc)
            with contextlib.suppress(redis.RedisError, OSError):
                context.redis.delete(key)
            return "projection failed"
        log.warning("run %s, epoch %d: projection failed, retried later: %r", run_id, epoch, exc)
        return "projection failed, retried later"
    rounded = np.round(np.asarray(points, dtype=np.float64), 4).tolist()
    epoch_store.record_projection(context.db, run_id, epoch, rounded, labels.tolist())
    forget_embeddings(context.settings.run_dir(run_id), epoch)
    with contextlib.suppress(redis.RedisError, OSError):
        context.redis.delete(key)
    return "projected"
