"""An external run's Idempotency-Key answers a retried registration with its run, and refuses
the key reused with another body (409 ``idempotency_key_reused``); a run registered by an
earlier release (no digest stored with its key) answers any body, as before."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update

from backend.store.database import Database
from backend.store.models import Run
from tests.service.stack import ServiceStack


def test_a_reused_idempotency_key_with_another_body_is_a_409(idle_stack: ServiceStack) -> None:
    key = {"Idempotency-Key": uuid.uuid4().hex}
    body = {"name": "idem", "config": {"lr": 0.1, "wd": 0.0}, "tags": ["a"]}
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        first = client.post("/api/external-runs", json=body, headers=key)
        assert first.status_code == 201, first.text
        run_id = first.json()["id"]
        # the same body again (its keys in another order): the same run
        same = {"tags": ["a"], "config": {"wd": 0.0, "lr": 0.1}, "name": "idem"}
        again = client.post("/api/external-runs", json=same, headers=key)
        assert (again.status_code, again.json()["id"]) == (200, run_id), again.text
        other = client.post("/api/external-runs", json={**body, "name": "other"}, headers=key)
        assert other.status_code == 409, other.text
        assert other.json()["code"] == "idempotency_key_reused"
        assert "Idempotency-Key" in other.json()["detail"]

        # a run an earlier release registered has no digest: its key answers any body
        database = Database(idle_stack.database_url)
        try:
            with database.write() as session:
                session.execute(update(Run).where(Run.id == run_id).values(idempotency_digest=None))
        finally:
            database.dispose()
        old = client.post("/api/external-runs", json={**body, "name": "other"}, headers=key)
        assert (old.status_code, old.json()["id"]) == (200, run_id), old.text
