"""A projection that fails on its input (UMAP raises) is tried a few times, then set aside:
the broker check stops re-sending it instead of looping on it for a day. Real SQLite, real
Redis (its own database number), the real projection code; no worker process needed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import redis

from backend.broker import make_celery
from backend.deployment import RedisNames
from backend.events import Publisher
from backend.projections import (
    MAX_PROJECTION_ATTEMPTS,
    failed_path,
    keep_embeddings,
    resend_projections,
)
from backend.settings import Settings
from backend.store import leases
from backend.store import runs as run_store
from backend.store.database import Database
from backend.store.models import now
from tests.service.stack import RedisServer
from workers.lifecycle import WorkerContext, execute_projection

CONFIG = {"method": "simsiam", "dataset": "digits", "epochs": 3, "seed": 0, "options": {}}


def test_a_failing_projection_is_given_up_after_a_few_attempts(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "data",
        redis_url=redis_server.url.replace("/0", "/6"),
        database_url=f"sqlite:///{tmp_path / 'store.db'}",
    )
    db = Database(settings.resolved_database_url)
    db.migrate()
    run = run_store.create_run(db, {"method": "simsiam"}, CONFIG)
    assert leases.claim_run(db, run.id, "worker-a")[0] is not None  # running: re-sends look
    run_dir = settings.run_dir(run.id)
    nan = np.full((64, 8), np.nan, dtype=np.float16)  # UMAP raises "Input contains NaN"
    keep_embeddings(run_dir, 1, nan, np.zeros(64, dtype=np.int32))
    names = RedisNames.of(db)
    celery = make_celery(settings, names)
    context = WorkerContext(
        settings=settings,
        db=db,
        publisher=Publisher(settings.redis_url, names.channel),
        redis=redis.Redis.from_url(settings.redis_url),
        celery=celery,
        names=names,
        worker_id="test",
    )
    key = names.embeddings_key(run.id, 1)
    outcomes = []
    for _ in range(MAX_PROJECTION_ATTEMPTS):
        # the broker check finds the task gone (it ran and failed) and sends it again
        assert resend_projections(db, celery, settings, set(), sent_before=now() + 1) == 1
        outcomes.append(execute_projection(context, run.id, 1, key))
    assert outcomes[-1] == "projection failed", outcomes
    assert failed_path(run_dir, 1).exists()
    assert resend_projections(db, celery, settings, set(), sent_before=now() + 1) == 0
