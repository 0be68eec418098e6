"""The workers' Celery app: the service's app (:mod:`backend.broker`) with the task bodies of
:mod:`workers.tasks` registered on it.

- ``train``: one training run per task; run these workers with ``--pool solo`` (the run
  trains in the worker process itself, so killing the worker stops the run) and
  ``--concurrency 1``.
- ``projection``: UMAP of one epoch's embeddings, in separate workers so projections never
  delay training.

Start a worker::

    celery -A workers.celery_app worker -Q train --pool solo --concurrency 1
    celery -A workers.celery_app worker -Q projection --pool solo --concurrency 1

The app's Redis keys carry the deployment's id (backend/deployment.py), read here from the
database the worker is configured with (migrated first), so a worker never takes the tasks of
another deployment that shares its Redis.
"""

from __future__ import annotations

from backend.broker import make_celery
from backend.deployment import RedisNames
from backend.settings import get_settings
from backend.store.database import Database

settings = get_settings()
database = Database(settings.resolved_database_url)
database.migrate()
names = RedisNames.of(database)
app = make_celery(settings, names, include=("workers.tasks",))
