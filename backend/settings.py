"""Service settings, read once from the environment (or a ``.env`` file).

Every process of the service (API, train worker, projection worker, ``collapse-lab up``)
builds the same :class:`Settings`, so they agree on the database, Redis, the data directory
and the limits. Each field is an (optional) environment variable of its name in capitals,
with its description; README.md's configuration table is generated from them
(scripts/settings_table.py).
"""

from __future__ import annotations

import socket
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from dotenv import dotenv_values
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

REPO_ROOT = Path(__file__).resolve().parent.parent


# Read from the working directory of each process, beside its environment variables.
ENV_FILE = Path(".env")


class Settings(BaseSettings):
    """All configuration of the service; field names are the environment variables."""

    model_config = SettingsConfigDict(env_file=ENV_FILE, extra="ignore", case_sensitive=False)

    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; unset: the SQLite file `$DATA_DIR/collapse_lab.db` (WAL "
        "mode). PostgreSQL: `postgresql+psycopg://user:pass@host:5432/db`",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="broker and live event channel (`make up` starts a local redis-server if "
        "none answers, or one on a free port when the one that answers was started by another "
        'deployment\'s `make up`: see "Several machines, GPUs")',
    )
    data_dir: Path = Field(
        Path("data"),
        description="datasets, decoded image folders (`cache/`), run checkpoints (`runs/`), "
        "the SQLite file",
    )
    frontend_dir: Path = Field(
        REPO_ROOT / "frontend",
        description="where the pages, scripts and styles of the dashboard are served from",
    )
    api_token: str | None = Field(
        None,
        description="when set, launching, cancelling, deleting and sharing need "
        "`Authorization: Bearer <token>` (the dashboard keeps it in the "
        "`collapse_lab_token_<port>` cookie: cookies ignore ports, so the name carries it)",
    )
    private: bool = Field(
        False,
        description="`true`: reading needs the token too (or a share link `/s/{token}`)",
    )
    api_host: str = Field(
        "127.0.0.1",
        description="the address `make up` serves the dashboard on (`collapse-lab up --host` "
        "overrides it, for the API's process too)",
    )
    api_port: int = Field(
        8000,
        ge=1,
        le=65535,
        description="the port `make up` serves the dashboard on (`collapse-lab up --port` "
        "overrides it, for the API's process too)",
    )

    max_epochs: int = Field(500, ge=1, description="launch limit: most epochs of a run")
    max_batch_size: int = Field(4096, ge=8, description="launch limit: largest batch size")
    max_probe_size: int = Field(
        10_000,
        ge=64,
        description="launch limit: largest probe (also bounds an external run's probe)",
    )
    max_train_size: int = Field(
        200_000, ge=64, description="launch limit: most training images of a run"
    )
    max_epoch_bytes: int = Field(
        256 * 2**20,
        ge=2**16,
        description="the largest epoch upload of an external run (256 MiB)",
    )
    max_sweep_runs: int = Field(
        100, ge=1, description="most runs one sweep may have (grid points × seeds)"
    )
    sweep_concurrency: int = Field(
        2,
        ge=1,
        description="default number of a sweep's runs sent to the workers at once "
        "(backend/dispatch.py)",
    )

    heartbeat_interval_s: float = Field(
        2.0, gt=0, description="how often a training worker writes its run's heartbeat"
    )
    heartbeat_timeout_s: float = Field(
        45.0,
        gt=0,
        description="a running run whose heartbeat is older than this is requeued (its "
        "worker died)",
    )
    reaper_interval_s: float = Field(
        10.0,
        gt=0,
        description="how often every process looks for such runs, sends the queued runs not "
        "sent yet and tops up the sweeps",
    )
    max_worker_losses: int = Field(
        3, ge=1, description="a run that kills its worker this many times ends `failed`"
    )
    requeue_queued_after_s: float = Field(
        600.0,
        gt=0,
        description="a queued run whose task a worker received this long ago without taking "
        "the run (it died first) is sent again by the broker check; a run merely waiting in "
        "the queue is never sent twice",
    )
    broker_check_interval_s: float = Field(
        30.0,
        gt=0,
        description="how often every process compares the tasks in Redis (train, projection "
        "and ingest queues) with the store and re-sends what is missing (also at once when "
        "Redis comes back after an outage or a restart)",
    )
    sse_keepalive_s: float = Field(
        15.0, gt=0, description="keep-alive comment interval on event streams"
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=1024,
        description="largest request body (1 MiB); a larger one gets 413 before anything parses it",
    )
    progress_interval_s: float = Field(
        0.25,
        ge=0,
        description="shortest time between two progress events of a training run (its "
        "progress bar; the last step of an epoch always sends one); 0: every step",
    )

    alert_webhooks: str = Field(
        "",
        description="comma-separated webhook URLs told of every run's collapse, recovery, "
        'cause, failure and end, and of every sweep\'s end (see "Alerts"; runs and sweeps '
        "add their own with `alerts` in their request)",
    )
    alert_allow_private: bool = Field(
        False,
        description="`true`: the `alerts` of a request may name a loopback, private, "
        "link-local, unspecified or otherwise not globally routable IP address (a carrier's "
        "100.64.0.0/10 too) or `localhost` (refused with a 422 otherwise, "
        "so that a request cannot make the server post to its own network); host names are "
        "not resolved, so a DNS name is trusted. `ALERT_WEBHOOKS` is never checked",
    )
    alert_retry_for_s: float = Field(
        3600.0, gt=0, description="how long an alert is retried before it is given up"
    )
    alert_timeout_s: float = Field(
        5.0, gt=0, description="how long one post to a receiver may take"
    )
    public_url: str | None = Field(
        None,
        description="the dashboard's address as people reach it, for the links in alerts; "
        "unset: `http://API_HOST:API_PORT` (this host's name when `API_HOST` is 0.0.0.0)",
    )

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
        """The database URL, a relative SQLite path made absolute from this process's
        working directory (the services `collapse-lab up` starts work elsewhere)."""
        if not self.database_url:
            return f"sqlite:///{self.resolved_data_dir / 'collapse_lab.db'}"
        try:
            url = make_url(self.database_url)
        except ArgumentError:  # not a URL: said where the database is opened
            return self.database_url
        path = url.database
        if url.get_backend_name() != "sqlite" or not path or path == ":memory:":
            return self.database_url
        if path.startswith("file:") or Path(path).is_absolute():
            return self.database_url
        return url.set(database=str(Path(path).resolve())).render_as_string(hide_password=False)

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


def with_env_file(environment: Mapping[str, str]) -> dict[str, str]:
    """``environment`` with the settings of this process's ``.env`` beneath it (a variable
    set in both keeps its environment value, as :class:`Settings` reads them): the services
    `collapse-lab up` and `collapse-lab worker` start run in the repository, where the .env
    beside the command is not, and must read the settings the command read. Only settings:
    what else the file holds, Settings ignores too (README, "Configuration")."""
    from_file = dotenv_values(ENV_FILE) if ENV_FILE.is_file() else {}
    return {
        **{
            name: value
            for name, value in from_file.items()
            if value is not None and name.lower() in Settings.model_fields
        },
        **environment,
    }
