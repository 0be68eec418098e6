"""Records stored by the first release keep opening: tests/data/first-release.sqlite was made
by commit ce4d7e6 through its own code and store (tests/data/build_first_release_db.py: two
finished runs, their epochs, projections and a share). Today's API migrates it at start
(alembic upgrade) and must serve every run, epoch, projection, report and share intact; the
typed reader and today's verdict read every old record."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.store import epochs as epoch_store
from backend.store.database import Database
from tests.service.stack import RedisServer, ServiceStack, api_only_stack
from workers.engine.verdict import run_verdict

FIRST_RELEASE = Path(__file__).resolve().parent.parent / "data" / "first-release.sqlite"


def _stored(path: Path) -> dict[str, Any]:
    """The fixture's rows as the first release wrote them (read before any migration)."""
    with sqlite3.connect(path) as db:
        runs = {
            run_id: {"status": status, "verdict": json.loads(verdict), "last_epoch": last}
            for run_id, status, verdict, last in db.execute(
                "select id, status, verdict, last_epoch from runs"
            )
        }
        epochs: dict[str, list[dict[str, Any]]] = {run_id: [] for run_id in runs}
        for run_id, record in db.execute("select run_id, record from epochs order by epoch"):
            epochs[run_id].append(json.loads(record))
        projections = {
            (run_id, epoch): (json.loads(points), json.loads(labels))
            for run_id, epoch, points, labels in db.execute(
                "select run_id, epoch, points, labels from projections"
            )
        }
        shares = [
            (token, json.loads(run_ids))
            for token, run_ids in db.execute("select token, run_ids from shares")
        ]
        (revision,) = db.execute("select version_num from alembic_version").fetchone()
    return {
        "runs": runs,
        "epochs": epochs,
        "projections": projections,
        "shares": shares,
        "revision": revision,
    }


def _assert_contains(served: Any, stored: Any, where: str) -> None:
    """Every value the first release stored is served unchanged (later fields may be added)."""
    if isinstance(stored, dict):
        assert isinstance(served, dict), where
        for key, value in stored.items():
            assert key in served, f"{where}.{key} is missing"
            _assert_contains(served[key], value, f"{where}.{key}")
    elif isinstance(stored, float) and isinstance(served, float):
        assert served == pytest.approx(stored, rel=1e-12, abs=1e-300), where
    else:
        assert served == stored, where


@pytest.fixture(scope="module")
def old_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    workdir = tmp_path_factory.mktemp("first-release")
    shutil.copy(FIRST_RELEASE, workdir / "collapse_lab.db")
    with api_only_stack(redis_server.url.replace("/0", "/4"), workdir) as stack:
        yield stack


def test_the_first_releases_database_opens_intact(old_stack: ServiceStack) -> None:
    stored = _stored(FIRST_RELEASE)
    assert stored["revision"] == "0001"  # the first release's schema
    assert len(stored["runs"]) == 2 and all(len(e) == 3 for e in stored["epochs"].values())
    with httpx.Client(base_url=old_stack.base_url, timeout=30) as api:
        listed = {run["id"]: run for run in api.get("/api/runs").json()["data"]}
        assert set(listed) == set(stored["runs"])
        for run_id, run in stored["runs"].items():
            assert listed[run_id]["status"] == run["status"] == "succeeded"
            detail = api.get(f"/api/runs/{run_id}").json()
            assert detail["last_epoch"] == run["last_epoch"] == 2
            _assert_contains(detail["verdict"], run["verdict"], f"{run_id}.verdict")
            records = api.get(f"/api/runs/{run_id}/epochs").json()
            assert [r["epoch"] for r in records] == [0, 1, 2]
            for served, old in zip(records, stored["epochs"][run_id], strict=True):
                _assert_contains(served, old, f"{run_id}.epoch{old['epoch']}")
            csv = api.get(f"/api/runs/{run_id}/epochs.csv")
            assert csv.status_code == 200 and len(csv.text.strip().splitlines()) == 4
            assert "projector.effective_rank" in csv.text.splitlines()[0]
            report = api.get(f"/api/runs/{run_id}/report.html")
            assert report.status_code == 200 and run_id in report.text
        for (run_id, epoch), (points, labels) in stored["projections"].items():
            projection = api.get(f"/api/runs/{run_id}/projections/{epoch}").json()
            assert projection["points"] == points and projection["labels"] == labels
        for token, run_ids in stored["shares"]:
            share = api.get(f"/api/shares/{token}").json()
            assert sorted(share["runs"]) == sorted(run_ids)
        compare = api.get("/api/compare/report.html", params={"runs": ",".join(stored["runs"])})
        assert compare.status_code == 200


def test_old_records_read_as_typed_records_and_get_todays_verdict(old_stack: ServiceStack) -> None:
    db = Database(old_stack.database_url)  # migrated by the API at its start
    try:
        for run_id, old in _stored(FIRST_RELEASE)["epochs"].items():
            history = epoch_store.typed_epoch_records(db, run_id)
            assert [r.epoch for r in history] == [r["epoch"] for r in old]
            last = history[-1].projector
            # measured by the first release: read back; added since: None (not measured)
            assert last.effective_rank == old[-1]["projector"]["effective_rank"]
            assert last.participation_ratio is None and last.lidar is None
            verdict = run_verdict(history)
            assert verdict.kind == old[-1]["verdict"]["kind"]
            assert 0.5 < last.spread <= 1.0
    finally:
        db.dispose()
