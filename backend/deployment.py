"""This deployment's names in Redis, so that several deployments can share one Redis server.

Two ``make up`` on one host (two ports, two ``DATA_DIR``s), or a test stack beside a
production one, may use the same Redis. Each deployment has an id, created once by a
migration and kept in its database (the table ``deployment``, see
``backend/migrations/versions/0009_deployment_id.py``); every process (API, workers,
``celery inspect``) reads it from the database it is configured with, and every name the
deployment uses in Redis starts with ``collapse-lab:<id>:``: Celery's queues and their
bookkeeping (kombu's ``global_keyprefix``), the event channel, the worker registry and the
embeddings waiting for their projection. A worker therefore only ever receives the tasks of
its own deployment, and ``GET /api/health`` lists only its own workers.

The processes of one deployment share its database, so they agree on the id without
configuration; a copy of a database (a backup restored elsewhere) is the same deployment
until its ``deployment`` row is given a new id.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.store.database import Database


@dataclass(frozen=True)
class RedisNames:
    """Every Redis key and channel of one deployment."""

    deployment_id: str

    @classmethod
    def of(cls, db: Database) -> RedisNames:
        return cls(db.deployment_id)

    @property
    def prefix(self) -> str:
        return f"collapse-lab:{self.deployment_id}"

    @property
    def broker_prefix(self) -> str:
        """Put by kombu in front of every key of the Celery broker (queues, unacked...)."""
        return f"{self.prefix}:celery:"

    def broker_key(self, name: str) -> str:
        """The Redis key of the broker's ``name`` (a queue's list, ``unacked``...)."""
        return f"{self.broker_prefix}{name}"

    @property
    def channel(self) -> str:
        """The pub/sub channel of the live events (channels ignore database numbers)."""
        return f"{self.prefix}:events"

    def worker_key(self, worker_id: str) -> str:
        """A worker's entry in the registry (``*`` matches them all)."""
        return f"{self.prefix}:worker:{worker_id}"

    def embeddings_key(self, run_id: str, epoch: int) -> str:
        """An epoch's probe embeddings, waiting for their projection."""
        return f"{self.prefix}:embeddings:{run_id}:{epoch}"
