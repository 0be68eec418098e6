"""The alerts' tables (backend/alerts.py decides what to announce, this module keeps it).

The scanner reads each run's event log in order from where it stopped (``AlertRunState``);
what it decides to announce is queued in ``alert_deliveries`` in the same transaction that
moves its position forward, so a crash never loses an alert nor queues one twice. Two
processes scanning at once cannot both move a run forward (compare-and-set on
``last_seq``), and ``(key, url)`` is unique. Deliveries are claimed before sending so two
senders never post the same one at the same time; a process claims one per receiver at a time
(backend/alerts.py ``Senders``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from backend.store.database import Database
from backend.store.eventlog import EVENT_BATCH
from backend.store.models import (
    AlertDelivery,
    AlertRunState,
    AlertScanner,
    EpochRow,
    Event,
    Run,
    Sweep,
    json_safe,
    now,
)

# A claim older than this is taken to belong to a sender that died mid-post (longer when a
# post may take longer: backend/alerts.py).
CLAIM_STALE_S = 60.0


@dataclass(frozen=True)
class QueuedAlert:
    key: str
    url: str
    body: dict[str, Any]


@dataclass(frozen=True)
class Announced:
    """What the scanner has said of a run so far."""

    verdict_kind: str = "healthy"
    cause: str | None = None
    last_epoch: int | None = None  # the highest epoch whose verdict was read
    last_end: str | None = None  # the digest of the last end told (backend/alerts.py)


@dataclass(frozen=True)
class RunReading:
    """A run with events the scanner has not read: where it stopped and what it had said."""

    run: Run
    sweep: Sweep | None
    last_seq: int | None  # None: never read
    announced: Announced
    events: list[Event]


class ScanPass:
    """One scanning pass inside one write transaction (see :func:`scan_pass`)."""

    def __init__(self, db: Database, session: Session) -> None:
        self._db = db
        self._session = session

    def started_at(self) -> float:
        """When alerts started on this database (recorded by the first pass)."""
        row = self._session.get(AlertScanner, 1)
        if row is None:
            row = AlertScanner(id=1, started_at=now())
            self._session.add(row)
            self._session.flush()
        return row.started_at

    def unread(self, limit: int) -> Iterator[RunReading]:
        """Runs whose log has events the scanner has not read, oldest activity first (each
        with EVENT_BATCH of them at most)."""
        rows = self._session.execute(
            select(Run, AlertRunState)
            .outerjoin(AlertRunState, AlertRunState.run_id == Run.id)
            .where(Run.last_event_seq > func.coalesce(AlertRunState.last_seq, 0))
            .order_by(Run.updated_at)
            .limit(limit)
        ).all()
        for run, state in rows:
            last_seq = state.last_seq if state is not None else None
            events = list(
                self._session.scalars(
                    select(Event)
                    .where(Event.run_id == run.id, Event.seq > (last_seq or 0))
                    .order_by(Event.seq)
                    .limit(EVENT_BATCH)
                )
            )
            sweep = self._session.get(Sweep, run.sweep_id) if run.sweep_id else None
            yield RunReading(
                run=run,
                sweep=sweep,
                last_seq=last_seq,
                announced=Announced()
                if state is None
                else Announced(state.verdict_kind, state.cause, state.last_epoch, state.last_end),
                events=events,
            )

    def epoch_record(self, run_id: str, epoch: int) -> dict[str, Any] | None:
        """The run's stored record of ``epoch`` (None when it has none)."""
        return self._session.scalar(
            select(EpochRow.record).where(EpochRow.run_id == run_id, EpochRow.epoch == epoch)
        )

    def sweep_statuses(self, sweep_id: str) -> list[tuple[str, str | None]]:
        """(status, verdict kind) of each run of the sweep."""
        rows = self._session.execute(
            select(Run.status, Run.verdict_kind).where(Run.sweep_id == sweep_id)
        ).all()
        return [(row.status, row.verdict_kind) for row in rows]

    def advance(
        self,
        reading: RunReading,
        last_seq: int,
        announced: Announced,
        alerts: list[QueuedAlert],
    ) -> bool:
        """Move the run's position to ``last_seq`` and queue ``alerts``, unless another
        process moved it first (then nothing is queued: that process queued them)."""
        values = {"last_seq": last_seq, **asdict(announced)}
        if reading.last_seq is None:
            won = self._insert_ignoring_conflict(
                AlertRunState, [{"run_id": reading.run.id, **values}]
            )
        else:
            result = self._session.execute(
                update(AlertRunState)
                .where(
                    AlertRunState.run_id == reading.run.id,
                    AlertRunState.last_seq == reading.last_seq,
                )
                .values(**values)
            )
            won = cast(CursorResult[Any], result).rowcount == 1
        if won and alerts:
            stamp = now()
            self._insert_ignoring_conflict(
                AlertDelivery,
                [
                    {
                        "key": alert.key,
                        "url": alert.url,
                        "body": json_safe(alert.body),
                        "created_at": stamp,
                        "attempts": 0,
                        "next_attempt_at": stamp,
                    }
                    for alert in alerts
                ],
            )
        return won

    def _insert_ignoring_conflict(self, model: Any, rows: list[dict[str, Any]]) -> bool:
        dialect = sqlite if self._db.is_sqlite else postgresql
        result = self._session.execute(dialect.insert(model).values(rows).on_conflict_do_nothing())
        return bool(cast(CursorResult[Any], result).rowcount)


@contextmanager
def scan_pass(db: Database) -> Iterator[ScanPass]:
    with db.write() as session:
        yield ScanPass(db, session)


def claim_due(
    db: Database,
    limit: int,
    busy_urls: Collection[str] = (),
    stale_after_s: float = CLAIM_STALE_S,
) -> list[AlertDelivery]:
    """Deliveries due now, claimed by this process (none is handed out twice at once): each
    receiver's oldest pending one, if it is due, none for the receivers in ``busy_urls``
    (one post in flight per receiver, and a later alert never overtakes one waiting out its
    retry backoff: a receiver hears its alerts in order), at most ``limit``. A claim older
    than ``stale_after_s`` is taken to belong to a sender that died mid-post."""
    stamp = now()

    def due_now(next_attempt_at: Any, claimed_at: Any) -> tuple[Any, ...]:
        """Its attempt is due and no live sender holds it (of the table or the ranking)."""
        unclaimed = or_(claimed_at.is_(None), claimed_at < stamp - stale_after_s)
        return next_attempt_at <= stamp, unclaimed

    pending = (AlertDelivery.delivered_at.is_(None), AlertDelivery.failed_at.is_(None))
    due = (*pending, *due_now(AlertDelivery.next_attempt_at, AlertDelivery.claimed_at))
    ranked = (
        select(
            AlertDelivery.id,
            AlertDelivery.next_attempt_at,
            AlertDelivery.claimed_at,
            func.row_number()
            .over(partition_by=AlertDelivery.url, order_by=AlertDelivery.id)
            .label("place"),
        )
        .where(*pending, AlertDelivery.url.not_in(list(busy_urls)))
        .subquery()
    )
    # each receiver's first, picked apart from the locking select: PostgreSQL refuses
    # FOR UPDATE beside a window function
    firsts = (
        select(ranked.c.id)
        .where(ranked.c.place == 1, *due_now(ranked.c.next_attempt_at, ranked.c.claimed_at))
        .order_by(ranked.c.next_attempt_at, ranked.c.id)
        .limit(limit)
    )
    with db.write() as session:
        claimed = list(
            session.scalars(
                select(AlertDelivery)
                .where(AlertDelivery.id.in_(firsts), *due)
                .order_by(AlertDelivery.next_attempt_at, AlertDelivery.id)
                .with_for_update(skip_locked=True)
            )
        )
        for delivery in claimed:
            delivery.claimed_at = stamp
        return claimed


def mark_delivered(db: Database, delivery_id: int) -> None:
    with db.write() as session:
        session.execute(
            update(AlertDelivery)
            .where(AlertDelivery.id == delivery_id)
            .values(delivered_at=now(), claimed_at=None, attempts=AlertDelivery.attempts + 1)
        )


def mark_attempt_failed(
    db: Database, delivery_id: int, error: str, next_attempt_at: float | None
) -> None:
    """Record a failed attempt: try again at ``next_attempt_at``, or give up when None."""
    values: dict[str, Any] = {
        "claimed_at": None,
        "attempts": AlertDelivery.attempts + 1,
        "last_error": error[:500],
    }
    if next_attempt_at is None:
        values["failed_at"] = now()
    else:
        values["next_attempt_at"] = next_attempt_at
    with db.write() as session:
        session.execute(update(AlertDelivery).where(AlertDelivery.id == delivery_id).values(values))


@dataclass(frozen=True)
class DeliverySummary:
    pending: int
    delivered: int
    failed: int
    retrying: int  # pending after at least one failed attempt
    last_error: str | None
    last_error_url: str | None  # a secret: GET /api/health shows backend/alerts.py receiver_label
    last_error_at: float | None


def delivery_summary(db: Database) -> DeliverySummary:
    with db.read() as session:
        pending = session.scalar(
            select(func.count()).where(
                AlertDelivery.delivered_at.is_(None), AlertDelivery.failed_at.is_(None)
            )
        )
        retrying = session.scalar(
            select(func.count()).where(
                AlertDelivery.delivered_at.is_(None),
                AlertDelivery.failed_at.is_(None),
                AlertDelivery.attempts > 0,
            )
        )
        delivered = session.scalar(
            select(func.count()).where(AlertDelivery.delivered_at.is_not(None))
        )
        failed = session.scalar(select(func.count()).where(AlertDelivery.failed_at.is_not(None)))
        last = session.execute(
            select(AlertDelivery.last_error, AlertDelivery.url, AlertDelivery.failed_at)
            .where(AlertDelivery.last_error.is_not(None), AlertDelivery.delivered_at.is_(None))
            .order_by(AlertDelivery.id.desc())
            .limit(1)
        ).first()
    return DeliverySummary(
        pending=pending or 0,
        delivered=delivered or 0,
        failed=failed or 0,
        retrying=retrying or 0,
        last_error=last.last_error if last else None,
        last_error_url=last.url if last else None,
        last_error_at=last.failed_at if last else None,
    )
