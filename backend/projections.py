"""Projection hand-off that survives Redis: each epoch's probe embeddings are also kept in the
run directory until their projection is stored, so a projection that could not be sent
(Redis down) or whose task Redis lost is sent again, never dropped.

``DATA_DIR/runs/<id>/embeddings/<epoch>.npz`` (``z`` float16 (N, d), ``labels`` int32) is a
projection not sent yet; ``<epoch>.sent.npz`` one whose task went out. Renaming one into
the other is atomic, so of several processes re-sending, one only sends each. The projection
task reads the embeddings from Redis and, when the key is gone, from the file; it deletes
both once the projection is stored. The broker check (:class:`backend.dispatch.BrokerWatch`)
sends the unsent ones, and the sent ones whose task is no longer in Redis.

A projection that fails (``project`` raises on these embeddings) would otherwise be re-sent
by every process at every check for a day: each failure is counted in ``<epoch>.failures``,
and after ``MAX_PROJECTION_ATTEMPTS`` the embeddings become ``<epoch>.failed.npz``, which
nothing sends again (kept for a look at what failed).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path

import numpy as np
from celery import Celery

from backend.broker import send_projection
from backend.deployment import RedisNames
from backend.settings import Settings
from backend.store import epochs as epoch_store
from backend.store import runs as run_store
from backend.store.database import Database

log = logging.getLogger(__name__)

EMBEDDING_TTL_S = 24 * 3600  # how long embeddings wait in Redis, and how far back re-sends look


def _folder(run_dir: Path) -> Path:
    return run_dir / "embeddings"


def pending_path(run_dir: Path, epoch: int) -> Path:
    return _folder(run_dir) / f"{epoch}.npz"


def sent_path(run_dir: Path, epoch: int) -> Path:
    return _folder(run_dir) / f"{epoch}.sent.npz"


def failed_path(run_dir: Path, epoch: int) -> Path:
    return _folder(run_dir) / f"{epoch}.failed.npz"


def _failures_path(run_dir: Path, epoch: int) -> Path:
    return _folder(run_dir) / f"{epoch}.failures"


MAX_PROJECTION_ATTEMPTS = 3  # a failure may be passing (memory); the same one thrice is not


def note_projection_failure(run_dir: Path, epoch: int) -> bool:
    """Count one failed projection of the epoch; at the last allowed attempt set its
    embeddings aside so they are never sent again. Returns True when it gave up."""
    counter = _failures_path(run_dir, epoch)
    try:
        failures = int(counter.read_text()) + 1
    except (FileNotFoundError, ValueError):
        failures = 1
    if failures < MAX_PROJECTION_ATTEMPTS:
        counter.parent.mkdir(parents=True, exist_ok=True)
        counter.write_text(str(failures))
        return False
    for path in (sent_path(run_dir, epoch), pending_path(run_dir, epoch)):
        with contextlib.suppress(FileNotFoundError):
            os.replace(path, failed_path(run_dir, epoch))
    with contextlib.suppress(FileNotFoundError):
        counter.unlink()
    return True


def keep_embeddings(run_dir: Path, epoch: int, z16: np.ndarray, labels: np.ndarray) -> None:
    """Write the epoch's embeddings as not sent yet (atomically: a reader never sees half)."""
    path = pending_path(run_dir, epoch)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp.npz")
    np.savez(partial, z=z16, labels=labels)
    os.replace(partial, path)


def load_embeddings(run_dir: Path, epoch: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(z float32, labels) from the run directory, or None when neither file is there."""
    for path in (sent_path(run_dir, epoch), pending_path(run_dir, epoch)):
        try:
            with np.load(path) as stored:
                return stored["z"].astype(np.float32), stored["labels"]
        except (OSError, ValueError, KeyError):
            continue
    return None


def forget_embeddings(run_dir: Path, epoch: int) -> None:
    paths = (sent_path, pending_path, failed_path, _failures_path)
    for path in (p(run_dir, epoch) for p in paths):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def send_kept(
    celery: Celery, settings: Settings, names: RedisNames, run_id: str, epoch: int
) -> bool:
    """Claim the epoch's unsent embeddings (rename to sent) and send its projection task;
    put the claim back when the send fails. False when not sent (or claimed elsewhere)."""
    run_dir = settings.run_dir(run_id)
    try:
        os.replace(pending_path(run_dir, epoch), sent_path(run_dir, epoch))
    except FileNotFoundError:
        return False
    os.utime(sent_path(run_dir, epoch))  # the send time: a newer one may not be in Redis yet
    if send_projection(celery, run_id, epoch, names.embeddings_key(run_id, epoch)):
        return True
    with contextlib.suppress(FileNotFoundError):
        os.replace(sent_path(run_dir, epoch), pending_path(run_dir, epoch))
    return False


def resend_projections(
    db: Database,
    celery: Celery,
    settings: Settings,
    in_broker: set[tuple[str, int]],
    *,
    sent_before: float,
) -> int:
    """Send the projections of recent runs that were never sent (Redis was down), and those
    sent before ``sent_before`` whose task is not ``in_broker`` (Redis lost it); embeddings
    whose projection is stored already are deleted. Returns how many were sent."""
    sent = 0
    runs_root = settings.run_dir("_").parent  # resolved once, not per run
    redis_names = RedisNames.of(db)
    for run_id in run_store.recently_trained(db, time.time() - EMBEDDING_TTL_S):
        run_dir = runs_root / run_id
        try:
            files = [p.name for p in _folder(run_dir).iterdir()]
        except FileNotFoundError:
            continue
        if not files:
            continue
        stored = set(epoch_store.projection_epochs(db, run_id))
        for name in files:
            stem, _, suffix = name.partition(".")
            if not stem.isdigit() or suffix not in ("npz", "sent.npz"):
                continue
            epoch = int(stem)
            if epoch in stored:
                forget_embeddings(run_dir, epoch)
                continue
            if suffix == "sent.npz":
                if (run_id, epoch) in in_broker:
                    continue
                path = sent_path(run_dir, epoch)
                with contextlib.suppress(FileNotFoundError):
                    if path.stat().st_mtime < sent_before:
                        os.replace(path, pending_path(run_dir, epoch))
            if send_kept(celery, settings, redis_names, run_id, epoch):
                sent += 1
            elif pending_path(run_dir, epoch).exists():
                return sent  # Redis is down: the next pass goes on
    if sent:
        log.warning("re-sent %d projections that had not gone out", sent)
    return sent
