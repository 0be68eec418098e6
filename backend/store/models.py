"""SQLAlchemy 2 models: runs, their per-epoch records, projections, the event log, shares,
sweeps.

Times are UNIX seconds (float, UTC) so the API, workers and the reaper compare them without
time-zone surprises; the API renders them as ISO 8601. Status names are the run spec's
(:data:`contract.RUN_STATUSES`).

Invariants the constraints enforce:
- ``epochs``: one row per (run_id, epoch): an epoch is recorded exactly once, whichever
  worker reports it and however often. Its ``effective_rank`` is the record's projector
  effective rank, the one number the run list reads (for its sparklines).
- ``projections``: one row per (run_id, epoch).
- ``external_uploads``: one row per (run_id, epoch) of an external run.
- ``events``: per-run sequence numbers ``seq`` (1, 2, 3... no gaps) are the SSE event ids;
  ``id`` is a global, increasing id used by the run-list stream.
"""

from __future__ import annotations

import math
import time
from typing import Any

from collapse_lab import wire
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from contract.labels import MAX_NAME_CHARS, MAX_PROJECT_CHARS, MAX_TAG_CHARS

JSONType = JSON().with_variant(JSONB(), "postgresql")
BigId = BigInteger().with_variant(Integer(), "sqlite")


def now() -> float:
    """The store's clock: UNIX seconds."""
    return time.time()


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that strict JSON (and PostgreSQL's jsonb) accepts: NaN and
    infinities become None, numpy scalars and arrays become Python numbers and lists."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_safe(value.tolist())
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return value


def verdict_cause_guard(verdict: dict[str, Any]) -> str | None:
    """The guard a stored verdict names as the cause of its collapse, if any."""
    cause = verdict.get("cause")
    return str(cause["guard"]) if isinstance(cause, dict) and cause.get("guard") else None


def take_verdict(run: Run, verdict: dict[str, Any]) -> None:
    """Make ``verdict`` (a verdict's JSON) the run's current one, its kind and cause guard
    copied into the columns the run list filters on."""
    run.verdict = json_safe(verdict)
    run.verdict_kind = verdict.get("kind")
    run.cause = verdict_cause_guard(verdict)


class Base(DeclarativeBase):
    pass


class Run(Base):
    __tablename__ = "runs"
    __table_args__ = (
        Index("uq_runs_idempotency_key", "idempotency_key", unique=True),
        Index("uq_runs_resume_key", "resume_key", unique=True),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    updated_at: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(16), index=True)
    method: Mapped[str] = mapped_column(String(32), index=True)
    preset: Mapped[str | None] = mapped_column(String(64), index=True)
    dataset: Mapped[str] = mapped_column(String(32), index=True)
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)  # what the user sent
    config: Mapped[dict[str, Any]] = mapped_column(JSONType)  # the resolved RunConfig
    epochs_total: Mapped[int] = mapped_column(Integer)
    last_epoch: Mapped[int | None] = mapped_column(Integer)  # last recorded epoch (0 = baseline)
    # the earliest epoch stored after later ones whose verdicts are not yet judged again
    # with it (backend/store/epochs.py): kept in the row so a worker lost mid-pass leaves the
    # revision to the next pass
    verdicts_stale_from: Mapped[int | None] = mapped_column(Integer, default=None)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    verdict_kind: Mapped[str | None] = mapped_column(String(32), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    worker_id: Mapped[str | None] = mapped_column(String(255))
    lease_token: Mapped[str | None] = mapped_column(String(64))
    heartbeat_at: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    enqueued_at: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker_losses: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    last_event_seq: Mapped[int] = mapped_column(Integer, default=0)
    # External runs (logged by collapse_lab.Monitor, backend/store/external.py): where they
    # come from (host, script, integration...), None for a run trained here; the
    # registration's Idempotency-Key (and its body's digest); the finish call's body once
    # the client closed it; the key a restarted job continues the run with (its SLURM job
    # id...).
    source: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    idempotency_key: Mapped[str | None] = mapped_column(String(64))
    # sha256 of the registration first sent with the key (None: stored by an earlier release)
    idempotency_digest: Mapped[str | None] = mapped_column(String(64))
    resume_key: Mapped[str | None] = mapped_column(String(wire.MAX_RESUME_KEY))
    external_finish: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    ingest_sent_at: Mapped[float | None] = mapped_column(Float)  # last ingest re-send claim
    # the sweep this run belongs to (None for a single run); see backend.store.sweeps
    sweep_id: Mapped[str | None] = mapped_column(String(32), index=True, default=None)
    # labels (contract/labels.py): its name as listed and searched, project, tags (also one
    # RunTag row each, for the filter), a note; the verdict's cause guard, for the filter
    name: Mapped[str | None] = mapped_column(String(MAX_NAME_CHARS), default=None)
    project: Mapped[str | None] = mapped_column(String(MAX_PROJECT_CHARS), index=True, default=None)
    tags: Mapped[list[str] | None] = mapped_column(JSONType, default=list)
    note: Mapped[str | None] = mapped_column(Text, default="")
    cause: Mapped[str | None] = mapped_column(String(32), index=True, default=None)

    @property
    def epochs_shown(self) -> int:
        """The run's number of epochs as readers get it (the run resource, status events):
        its config's, or for an external run, which plans none, its last logged epoch."""
        return (self.last_epoch or 0) if self.source is not None else self.epochs_total


class RunTag(Base):
    """One tag of one run: ``GET /api/runs?tag=`` finds runs through this table's index."""

    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(MAX_TAG_CHARS), primary_key=True, index=True)


class EpochRow(Base):
    """One stored epoch record (the JSON of contract.EpochRecord) of a run."""

    __tablename__ = "epochs"
    __table_args__ = (
        UniqueConstraint("run_id", "epoch", name="uq_epochs_run_epoch"),
        # Covers the run list's sparkline query: it never reads the records themselves.
        Index("ix_epochs_run_epoch_rank", "run_id", "epoch", "effective_rank"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    record: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # record["projector"]["effective_rank"], copied out when the record is stored: reading it
    # from the JSON of every epoch of a page of runs costs ~50 ms for 50 runs x 100 epochs,
    # reading this column from the index under a millisecond.
    effective_rank: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[float] = mapped_column(Float)


class Projection(Base):
    __tablename__ = "projections"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_projections_run_epoch"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    epoch: Mapped[int] = mapped_column(Integer)
    points: Mapped[list[list[float]]] = mapped_column(JSONType)  # (N, 2)
    labels: Mapped[list[int]] = mapped_column(JSONType)  # (N,)
    created_at: Mapped[float] = mapped_column(Float)


class Event(Base):
    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("run_id", "seq", name="uq_events_run_seq"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Float)


class ExternalUpload(Base):
    """One uploaded epoch message of an external run, kept as sent (its SHA-256 answers a
    retried upload); ``processed_at`` is set once a worker turned it into an epoch record."""

    __tablename__ = "external_uploads"
    __table_args__ = (UniqueConstraint("run_id", "epoch", name="uq_external_uploads_run_epoch"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    epoch: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(String(64))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    shapes: Mapped[dict[str, list[int]]] = mapped_column(JSONType)  # array name -> shape
    created_at: Mapped[float] = mapped_column(Float)
    processed_at: Mapped[float | None] = mapped_column(Float)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_at: Mapped[float | None] = mapped_column(Float)  # an ingest pass measures it now


class Share(Base):
    __tablename__ = "shares"

    token: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # "run" | "compare" | "sweep"
    run_ids: Mapped[list[str]] = mapped_column(JSONType)
    sweep_id: Mapped[str | None] = mapped_column(String(32), default=None)  # kind "sweep"
    created_at: Mapped[float] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)


class Sweep(Base):
    """A base config x a grid x seeds; its runs are ordinary runs tagged with its id.

    ``axes``: [{"key", "field", "is_option", "values"}] in grid order; ``cells``: one per grid
    point, [{"point": {key: value}, "runs": [run ids, one per seed]}]."""

    __tablename__ = "sweeps"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    name: Mapped[str | None] = mapped_column(String(MAX_NAME_CHARS))
    request: Mapped[dict[str, Any]] = mapped_column(JSONType)  # what the user sent
    axes: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    seeds: Mapped[list[int]] = mapped_column(JSONType)
    cells: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    concurrency: Mapped[int] = mapped_column(Integer)


class AlertDelivery(Base):
    """One alert for one receiver (backend/alerts.py): sent until the receiver answers 2xx or
    its retry time runs out, and never again after a post that may have arrived (no answer
    within the timeout, or refused). ``(key, url)`` is unique, so an alert is queued at most
    once per receiver however many processes scan the event log; ``claimed_at`` marks the
    process sending it now."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        UniqueConstraint("key", "url", name="uq_alert_deliveries_key_url"),
        Index("ix_alert_deliveries_due", "delivered_at", "failed_at", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(128))  # the idempotency key, also in the body
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[float] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[float] = mapped_column(Float)
    claimed_at: Mapped[float | None] = mapped_column(Float)
    delivered_at: Mapped[float | None] = mapped_column(Float)
    failed_at: Mapped[float | None] = mapped_column(Float)  # gave up (last_error says why)
    last_error: Mapped[str | None] = mapped_column(Text)


class AlertRunState(Base):
    """How far the alert scanner has read a run's event log, and what it last announced."""

    __tablename__ = "alert_run_state"

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    verdict_kind: Mapped[str] = mapped_column(String(32))
    cause: Mapped[str | None] = mapped_column(String(32))
    # the highest epoch whose verdict was read (None: none yet, or read before it was kept)
    last_epoch: Mapped[int | None] = mapped_column(Integer)
    # the sha256 of the last end announced (status, verdict, last epoch, error): a run
    # reopened and closed again as it was is not announced twice (None: none yet)
    last_end: Mapped[str | None] = mapped_column(String(64))


class AlertScanner(Base):
    """One row: when alerts started on this database. Runs created before are read without
    alerting, so turning alerts on never announces a store's whole history."""

    __tablename__ = "alert_scanner"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    started_at: Mapped[float] = mapped_column(Float)
