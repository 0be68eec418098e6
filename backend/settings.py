"""Service settings, read once from the environment (or a ``.env`` file).

Every process of the service (API, train worker, projection worker, ``collapse-lab up``)
builds the same :class:`Settings`, so they agree on the database, Redis, the data directory
and the limits. Variables (all optional):

``DATABASE_URL``  SQLAlchemy URL; default ``sqlite:///$DATA_DIR/collapse_lab.db`` (WAL mode).
                  PostgreSQL: ``postgresql+psycopg://user:pass@host:5432/db``.
``REDIS_URL``     broker and live event channel; default ``redis://127.0.0.1:6379/0``.
``DATA_DIR``      datasets, run directories (checkpoints) and the SQLite file; default ``./data``.
``API_TOKEN``     when set, launching, cancelling, deleting and sharing need
                  ``Authorization: Bearer <token>`` (or the ``collapse_lab_token_<port>`` cookie).
``PRIVATE``       ``true``: reading needs the token too (or a share link for that run).
``API_HOST`` / ``API_PORT``  where ``collapse-lab up`` serves the API (default 127.0.0.1:8000).
``MAX_EPOCHS``, ``MAX_BATCH_SIZE``, ``MAX_PROBE_SIZE``, ``MAX_TRAIN_SIZE``  launch limits.
``MAX_EPOCH_BYTES``  the largest epoch upload of an external run (default 256 MiB).
``MAX_SWEEP_RUNS``  most runs one sweep may have (grid points x seeds; default 100).
``SWEEP_CONCURRENCY``  default for how many of a sweep's runs are sent to the workers at once
                  (2; see :mod:`backend.dispatch`).
``HEARTBEAT_INTERVAL_S``, ``HEARTBEAT_TIMEOUT_S``, ``REAPER_INTERVAL_S``, ``MAX_WORKER_LOSSES``
                  worker-death detection (a run whose heartbeat is older than the timeout is
                  requeued; after ``MAX_WORKER_LOSSES`` losses it ends ``failed``).
``REQUEUE_QUEUED_AFTER_S`` a queued run whose task a worker received this long ago (600)
                  without taking the run (it died first) is sent again by the broker
                  check; a task still waiting in its queue is never sent twice.
``BROKER_CHECK_INTERVAL_S`` how often (30) every process compares the tasks in Redis (train,
                  ingest, projection) with the store and re-sends the missing ones (at once, too,
                  when Redis comes back after an outage or a restart).
``MAX_BODY_BYTES`` largest request body (default 1 MiB); a larger one gets 413 before parsing.
``ALERT_WEBHOOKS`` comma-separated URLs told of every run's collapse, recovery, cause, failure
                  and end, and of every sweep's end (backend/alerts.py); runs and sweeps add
                  their own with ``alerts`` in their request.
``ALERT_RETRY_FOR_S`` how long an alert is retried before it is given up (3600).
``ALERT_TIMEOUT_S`` how long one post to a receiver may take (5).
``PUBLIC_URL``    the dashboard's address as people reach it, for links in alerts; default
                  ``http://API_HOST:API_PORT`` (the host name when API_HOST is 0.0.0.0).
"""

from __future__ import annotations

import socket
from functools import lru_cache
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    """All configuration of the service; field names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", case_sensitive=False)

    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite file by default.")
    redis_url: str = "redis://127.0.0.1:6379/0"
    data_dir: Path = Path("data")
    frontend_dir: Path = REPO_ROOT / "frontend"
    api_token: str | None = None
    private: bool = False
    api_host: str = "127.0.0.1"
    api_port: int = Field(8000, ge=1, le=65535)

    max_epochs: int = Field(500, ge=1)
    max_batch_size: int = Field(4096, ge=8)
    max_probe_size: int = Field(10_000, ge=64)
    max_train_size: int = Field(200_000, ge=64)
    max_epoch_bytes: int = Field(256 * 2**20, ge=2**16)  # one external run's epoch upload
    max_sweep_runs: int = Field(100, ge=1)
    sweep_concurrency: int = Field(2, ge=1)

    heartbeat_interval_s: float = Field(2.0, gt=0)
    heartbeat_timeout_s: float = Field(45.0, gt=0)
    reaper_interval_s: float = Field(10.0, gt=0)
    max_worker_losses: int = Field(3, ge=1)
    requeue_queued_after_s: float = Field(600.0, gt=0)
    broker_check_interval_s: float = Field(30.0, gt=0)
    sse_keepalive_s: float = Field(15.0, gt=0)
    max_body_bytes: int = Field(1 << 20, ge=1024)
    progress_interval_s: float = Field(0.25, ge=0)

    alert_webhooks: str = Field("", description="Comma-separated webhook URLs (server-wide).")
    alert_retry_for_s: float = Field(3600.0, gt=0)
    alert_timeout_s: float = Field(5.0, gt=0)
    public_url: str | None = None

    @property
    def alert_webhook_urls(self) -> list[str]:
        return [url.strip() for url in self.alert_webhooks.split(",") if url.strip()]

    @property
    def public_base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = socket.gethostname() if self.api_host in ("0.0.0.0", "::") else self.api_host
        return f"http://{host}:{self.api_port}"

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.resolved_data_dir / 'collapse_lab.db'}"

    def run_dir(self, run_id: str) -> Path:
        """Where the run's checkpoint lives (shared storage when workers span machines)."""
        return self.resolved_data_dir / "runs" / run_id


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read from the environment on first use)."""
    return Settings()


def probe_images_path(run_dir: Path) -> Path:
    """The run's probe images (uint8 (N, C, S, S), in projection order), written by the
    worker that trains it and read by the API for the thumbnails."""
    return run_dir / "probe_images.npy"
