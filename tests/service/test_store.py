"""The store's guarantees, on SQLite and on PostgreSQL (a fresh database per session)."""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from collapse_lab import wire
from sqlalchemy import text

from backend.store import epochs as epoch_store
from backend.store import eventlog, leases
from backend.store import external as external_store
from backend.store import runs as run_store
from backend.store import shares as share_store
from backend.store.database import BACKEND_DIR, Database
from backend.store.models import Base, now
from contract import EpochRecord

CONFIG = {"method": "simsiam", "dataset": "digits", "epochs": 3, "seed": 0, "options": {}}


def _record(epoch: int, **fields: object) -> EpochRecord:
    """A valid epoch record whose projector's effective rank is 10 + epoch."""
    metrics = {
        "dim": 32,
        "std_l2": 0.17,
        "std_l2_sqrt_d": 0.96,
        "effective_rank": 10.0 + epoch,
        "spectrum": [1.0, 0.5],
        "alignment": 0.4,
        "uniformity": -3.0,
        "cos_pos": 0.8,
        "cos_rand": 0.05,
        "knn_top1": 0.7,
        "cluster_entropy": None,
    }
    return EpochRecord.model_validate(
        {
            "epoch": epoch,
            "loss": None if epoch == 0 else -0.5 * epoch,
            "backbone": metrics,
            "projector": metrics,
            "verdict": {"kind": "healthy", "onset_epoch": None, "reason": "fine"},
        }
        | fields
    )


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'store.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    database.migrate()
    database.migrate()  # a second start-up finds the schema at head
    _empty(database)  # the session's PostgreSQL database may hold other test files' runs
    yield database
    _empty(database)
    database.dispose()


def _empty(database: Database) -> None:
    if not database.is_sqlite:
        with database.write() as session:
            session.execute(text("TRUNCATE runs, epochs, projections, events, shares CASCADE"))


def _new_run(db: Database) -> str:
    return run_store.create_run(db, {"method": "simsiam"}, CONFIG).id


def test_migration_0002_keeps_the_runs_and_fills_the_ranks_from_their_records(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    config = Config(str(BACKEND_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(BACKEND_DIR / "migrations"))
    config.set_main_option("sqlalchemy.url", url)
    command.upgrade(config, "0001")
    database = Database(url)
    with database.write() as session:
        session.execute(
            text(
                "INSERT INTO runs (id, created_at, updated_at, status, method, dataset, request, "
                "config, epochs_total, rank_history, attempts, worker_losses, cancel_requested, "
                "last_event_seq) VALUES ('old', 1, 1, 'succeeded', 'simsiam', 'digits', '{}', "
                "'{}', 3, '[10.0]', 1, 0, 0, 0)"
            )
        )
        session.execute(
            text(
                "INSERT INTO epochs (run_id, epoch, record, created_at) VALUES ('old', 0, "
                '\'{"epoch": 0, "projector": {"effective_rank": 10.0}}\', 1)'
            )
        )
    database.migrate()
    with database.read() as session:
        columns = {row[1] for row in session.execute(text("PRAGMA table_info(runs)"))}
    assert "rank_history" not in columns
    run = run_store.get_run(database, "old")
    assert run is not None and run.status == "succeeded"
    assert epoch_store.rank_histories(database, ["old"])["old"] == [10.0]
    database.dispose()


def test_the_migrations_build_the_schema_the_models_declare(db: Database) -> None:
    """Every column, index and table of backend/store/models.py comes from a migration (a
    column added to a model without one breaks every store an earlier release made). The
    ``deployment`` table is the one the store reads with SQL alone (migration 0009)."""
    with db.read_engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    outside_the_models = [
        d for d in differences if d[0] == "remove_table" and d[1].name == "deployment"
    ]
    assert len(outside_the_models) == 1
    assert [d for d in differences if d not in outside_the_models] == []


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'wal.db'}")
    with database.read() as session:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "wal"


def test_an_epoch_is_recorded_once_and_events_are_gap_free(db: Database) -> None:
    run_id = _new_run(db)
    assert epoch_store.record_epoch(db, run_id, _record(0)) is True
    assert epoch_store.record_epoch(db, run_id, _record(0)) is False  # a repeat is ignored
    assert epoch_store.record_epoch(db, run_id, _record(1)) is True
    assert epoch_store.record_epoch(db, "missing", _record(0)) is False
    assert [r["epoch"] for r in epoch_store.epoch_records(db, run_id)] == [0, 1]
    events = eventlog.events_after(db, run_id, 0)
    assert [e.seq for e in events] == [1, 2, 3]
    assert [e.type for e in events] == ["status", "epoch", "epoch"]
    assert [e.seq for e in eventlog.events_after(db, run_id, 2)] == [3]
    run = run_store.get_run(db, run_id)
    assert run is not None and run.last_epoch == 1
    assert epoch_store.rank_histories(db, [run_id])[run_id] == [10.0, 11.0]


def test_a_late_epoch_marks_the_later_verdicts_stale_until_a_revision_saw_it(
    db: Database,
) -> None:
    """Epochs stored in order leave nothing stale; a late one marks the run from its epoch
    (the earliest of several); a revision read before another epoch was stored does not
    clear the mark (the pass that stored that epoch revises again), one read after does."""
    run_id = _new_run(db)
    for epoch in (3, 4):
        assert epoch_store.record_epoch(db, run_id, _record(epoch))
    assert epoch_store.stale_verdicts(db, run_id) is None
    assert epoch_store.record_epoch(db, run_id, _record(2))
    assert epoch_store.record_epoch(db, run_id, _record(1))
    before = epoch_store.stale_verdicts(db, run_id)
    assert before is not None and before.since == 1
    assert [r.epoch for r in before.history] == [1, 2, 3, 4]
    assert epoch_store.record_epoch(db, run_id, _record(0))  # while a pass revises
    epoch_store.revise_verdicts(db, run_id, before, [])
    after = epoch_store.stale_verdicts(db, run_id)
    assert after is not None and after.since == 0 and len(after.history) == 5
    revised = _record(4, verdict={"kind": "complete_collapse", "onset_epoch": 4, "reason": "x"})
    epoch_store.revise_verdicts(db, run_id, after, [revised])
    assert epoch_store.stale_verdicts(db, run_id) is None
    run = run_store.get_run(db, run_id)
    assert run is not None and run.verdict_kind == "complete_collapse"


def test_a_finished_external_run_closes_only_once_its_stale_verdicts_are_revised(
    db: Database,
) -> None:
    """A pass that read the run before a late epoch was stored must not close it with the
    verdicts judged without that epoch: the pass that revises them closes it."""
    run_id = external_store.register_run(db, None, {"name": "synced late"}).run.id
    for epoch in (3, 4, 0):
        assert epoch_store.record_epoch(db, run_id, _record(epoch))
    finish = {"status": "succeeded", "error": None, "epochs_dropped": [], "epochs_skipped": []}
    external_store.request_finish(db, run_id, finish)
    verdict = {"kind": "healthy", "onset_epoch": None, "reason": "fine"}
    assert not external_store.close_run(db, run_id, verdict)
    stale = epoch_store.stale_verdicts(db, run_id)
    assert stale is not None
    epoch_store.revise_verdicts(db, run_id, stale, [])
    assert external_store.close_run(db, run_id, verdict)
    run = run_store.get_run(db, run_id)
    assert run is not None and run.status == "succeeded"


def test_rank_histories_come_from_the_epoch_records_of_each_run(db: Database) -> None:
    first, second, empty = _new_run(db), _new_run(db), _new_run(db)
    for epoch in (0, 2):  # epoch 1 missing: a gap, not a shift
        epoch_store.record_epoch(db, first, _record(epoch))
    epoch_store.record_epoch(db, second, _record(3))
    histories = epoch_store.rank_histories(db, [first, second, empty])
    assert histories[first] == [10.0, None, 12.0]
    assert histories[second] == [None, None, None, 13.0]
    assert histories.get(empty, []) == []


def test_rank_histories_leave_out_epochs_beyond_max_epoch(db: Database) -> None:
    """An epoch stored before uploads were bounded (wire.MAX_EPOCH) must not make the run
    list pad its sparkline up to it (2**62 Nones: a MemoryError on every list request)."""
    run_id = _new_run(db)
    epoch_store.record_epoch(db, run_id, _record(0))
    # PostgreSQL's INTEGER stops at 2**31 - 1 (whose padding would take 16 GiB: not tried)
    beyond = 2**62 if db.is_sqlite else wire.MAX_EPOCH + 1
    epoch_store.record_epoch(db, run_id, _record(beyond))
    assert epoch_store.rank_histories(db, [run_id])[run_id] == [10.0]
    epoch_store.record_epoch(db, run_id, _record(wire.MAX_EPOCH))
    history = epoch_store.rank_histories(db, [run_id])[run_id]
    assert len(history) == wire.MAX_EPOCH + 1 and history[-1] == 10.0 + wire.MAX_EPOCH


def test_concurrent_reports_of_the_same_epochs_store_each_once(db: Database) -> None:
    run_id = _new_run(db)
    errors: list[BaseException] = []

    def report() -> None:
        try:
            for epoch in range(5):
                epoch_store.record_epoch(db, run_id, _record(epoch))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=report) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [r["epoch"] for r in epoch_store.epoch_records(db, run_id)] == [0, 1, 2, 3, 4]
    seqs = [e.seq for e in eventlog.events_after(db, run_id, 0)]
    assert seqs == list(range(1, 7))


def test_a_run_is_claimed_by_one_worker_only(db: Database) -> None:
    run_id = _new_run(db)
    claim, _ = leases.claim_run(db, run_id, "worker-a")
    assert claim is not None
    second, why = leases.claim_run(db, run_id, "worker-b")
    assert second is None and "running" in why
    assert leases.heartbeat(db, run_id, claim.lease_token, {"epoch": 1}).owned
    assert not leases.heartbeat(db, run_id, "not-the-lease", None).owned
    assert leases.finish_run(db, run_id, "not-the-lease", "succeeded") is False
    assert leases.finish_run(
        db, run_id, claim.lease_token, "succeeded", verdict={"kind": "healthy"}
    )
    run = run_store.get_run(db, run_id)
    assert run is not None and run.status == "succeeded" and run.verdict == {"kind": "healthy"}
    assert eventlog.events_after(db, run_id, 0)[-1].data["status"] == "succeeded"


def _make_stale(db: Database, run_id: str) -> None:
    with db.write() as session:
        session.execute(
            text("UPDATE runs SET heartbeat_at = heartbeat_at - 1000 WHERE id = :id"),
            {"id": run_id},
        )


def test_reaper_requeues_a_silent_run_and_fails_it_after_repeated_losses(db: Database) -> None:
    run_id = _new_run(db)
    for loss in (1, 2, 3):
        claim, _ = leases.claim_run(db, run_id, f"worker-{loss}")
        assert claim is not None, f"claim {loss}"
        _make_stale(db, run_id)
        result = leases.reap(db, heartbeat_timeout_s=30, max_worker_losses=3)
        run = run_store.get_run(db, run_id)
        assert run is not None and run.status == ("queued" if loss < 3 else "failed")
        assert result.requeued == ([run_id] if loss < 3 else [])
        claimed = [c.run_id for c in leases.claim_unsent(db, sent_before=0.0)]
        assert claimed == ([run_id] if loss < 3 else [])
        assert not leases.heartbeat(db, run_id, claim.lease_token, None).owned
    run = run_store.get_run(db, run_id)
    assert run is not None and run.status == "failed" and run.worker_losses == 3
    assert "stopped responding 3 times" in (run.error or "")


def test_reaper_leaves_live_runs_alone_and_resends_unsent_ones(db: Database) -> None:
    live = _new_run(db)
    leases.claim_run(db, live, "worker")
    sent = _new_run(db)
    assert [c.run_id for c in leases.claim_unsent(db, sent_before=0.0, only=[sent])] == [sent]
    unsent = _new_run(db)
    result = leases.reap(db, heartbeat_timeout_s=30, max_worker_losses=3)
    assert result.requeued == []
    assert [e.seq for e in eventlog.events_after(db, live, 0)] == [1, 2]  # queued, running
    assert [c.run_id for c in leases.claim_unsent(db, sent_before=now() - 600)] == [unsent]
    # each is claimed once: a second sender finds nothing left to send
    assert leases.claim_unsent(db, sent_before=now() - 600) == []
    leases.mark_unsent(db, [unsent])  # its send failed: the next pass takes it again
    assert [c.run_id for c in leases.claim_unsent(db, sent_before=0.0)] == [unsent]
    # a task sent long ago and never taken is sent again
    assert [c.run_id for c in leases.claim_unsent(db, sent_before=now() + 1)] == [sent, unsent]


def test_concurrent_senders_claim_each_unsent_run_once(db: Database) -> None:
    runs = {_new_run(db) for _ in range(60)}
    claimed: list[list[str]] = [[] for _ in range(4)]

    def sender(index: int) -> None:
        while batch := leases.claim_unsent(db, sent_before=now() - 600, limit=7):
            claimed[index].extend(c.run_id for c in batch)

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [run_id for part in claimed for run_id in part]
    assert sorted(every) == sorted(runs), "each run claimed exactly once"


def test_cancel_ends_a_queued_run_and_flags_a_running_one(db: Database) -> None:
    queued = _new_run(db)
    cancel = run_store.request_cancel(db, queued)
    assert cancel.cancelled_now and cancel.run is not None and cancel.run.status == "cancelled"
    assert eventlog.events_after(db, queued, 0)[-1].data["status"] == "cancelled"
    assert not run_store.request_cancel(db, queued).cancelled_now  # it had already ended
    running = _new_run(db)
    claim, _ = leases.claim_run(db, running, "worker")
    cancel = run_store.request_cancel(db, running)
    assert not cancel.cancelled_now and cancel.run is not None and cancel.run.status == "running"
    assert run_store.request_cancel(db, "missing").run is None
    assert leases.heartbeat(db, running, claim.lease_token, None).cancel_requested


def test_list_filters_and_orders_newest_first(db: Database) -> None:
    ids = [_new_run(db) for _ in range(3)]
    run_store.request_cancel(db, ids[1])
    page, total = run_store.list_runs(db, run_store.RunFilter(), limit=2, offset=0)
    assert total == 3 and [r.id for r in page] == [ids[2], ids[1]]
    page, total = run_store.list_runs(db, run_store.RunFilter(status="cancelled"), 10, 0)
    assert total == 1 and page[0].id == ids[1]
    page, total = run_store.list_runs(db, run_store.RunFilter(ids=[ids[0]]), 10, 0)
    assert [r.id for r in page] == [ids[0]]


def test_projections_and_shares(db: Database) -> None:
    run_id = _new_run(db)
    assert epoch_store.record_projection(db, run_id, 0, [[0.0, 1.0], [2.0, 3.0]], [1, 2])
    assert [e.data for e in eventlog.events_after(db, run_id, 1)] == [
        {"epoch": 0, "count": 2, "url": f"/api/runs/{run_id}/projections/0"}
    ]
    assert epoch_store.record_projection(db, run_id, 0, [[9.0, 9.0]], [0]) is False
    assert epoch_store.get_projection(db, run_id, 0).points == [[0.0, 1.0], [2.0, 3.0]]
    assert epoch_store.previous_projection(db, run_id, 1) == [[0.0, 1.0], [2.0, 3.0]]
    share = share_store.create_share(db, [run_id])
    assert share.kind == "run" and share_store.get_share(db, share.token).run_ids == [run_id]
    assert share_store.revoke_share(db, share.token)
    assert share_store.get_share(db, share.token) is None
    assert run_store.delete_run(db, run_id) == "active"
    run_store.request_cancel(db, run_id)
    assert run_store.delete_run(db, run_id) == "deleted"
    assert run_store.get_run(db, run_id) is None


def test_non_finite_numbers_are_stored_as_null(db: Database) -> None:
    run_id = _new_run(db)
    epoch_store.record_epoch(db, run_id, _record(0, loss=math.nan, lr=math.inf))
    stored = epoch_store.epoch_records(db, run_id)[0]
    assert stored["loss"] is None and stored["lr"] is None


def test_epoch_records_as_json_text_match_the_decoded_records(db: Database) -> None:
    run_id = _new_run(db)
    for epoch in range(3):
        epoch_store.record_epoch(db, run_id, _record(epoch))
    assert json.loads(epoch_store.epoch_records_json(db, run_id)) == epoch_store.epoch_records(
        db, run_id
    )
    assert json.loads(epoch_store.epoch_records_json(db, run_id, since=1)) == [
        epoch_store.epoch_records(db, run_id)[2]
    ]
    assert epoch_store.epoch_records_json(db, "missing") == "[]"


def test_events_are_published_once_their_transaction_commits_and_dropped_on_rollback(
    db: Database,
) -> None:
    published: list[eventlog.EventMessage] = []
    db.on_commit = published.extend
    run = run_store.create_run(db, {"method": "simsiam"}, CONFIG)
    assert [(m.type, m.seq) for m in published] == [("status", 1)]
    created = published[0]

    with db.write() as session:
        locked = eventlog.lock_run(session, run.id)
        assert locked is not None
        message = eventlog.append_event(session, locked, "status", {"status": "queued"})
        assert published == [created], "nothing goes out before the commit"
    assert published == [created, message]

    with pytest.raises(RuntimeError), db.write() as session:
        locked = eventlog.lock_run(session, run.id)
        assert locked is not None
        eventlog.append_event(session, locked, "status", {"status": "queued"})
        raise RuntimeError("the transaction fails after logging an event")
    assert published == [created, message], "a rolled-back event is never published"

    claim, _ = leases.claim_run(db, run.id, "worker")
    assert claim is not None
    stored = eventlog.events_after(db, run.id, 0)
    assert [m.seq for m in stored] == [1, 2, 3]  # the rolled-back seq reused
    assert published == stored, "each committed event published once, as stored"
