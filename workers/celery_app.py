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
"""

from __future__ import annotations

from backend.broker import make_celery
from backend.settings import get_settings

app = make_celery(get_settings(), include=("workers.tasks",))
