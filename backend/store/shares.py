"""Read-only share links: a random token that names one run, a comparison or a sweep."""

from __future__ import annotations

import secrets

from sqlalchemy import select

from backend.store.database import Database
from backend.store.models import Share, now


def create_share(db: Database, run_ids: list[str], sweep_id: str | None = None) -> Share:
    """A link to one run, a comparison, or (with ``sweep_id``) a sweep's map and its runs."""
    kind = "sweep" if sweep_id is not None else "run" if len(run_ids) == 1 else "compare"
    share = Share(
        token=secrets.token_urlsafe(18),
        kind=kind,
        run_ids=list(run_ids),
        sweep_id=sweep_id,
        created_at=now(),
        revoked_at=None,
    )
    with db.write() as session:
        session.add(share)
        session.flush()
        return share


def get_share(db: Database, token: str) -> Share | None:
    """The share, or None when unknown or revoked."""
    with db.read() as session:
        share = session.get(Share, token)
        if share is None or share.revoked_at is not None:
            return None
        return share


def list_shares(db: Database) -> list[Share]:
    """Active shares, newest first."""
    with db.read() as session:
        return list(
            session.scalars(
                select(Share).where(Share.revoked_at.is_(None)).order_by(Share.created_at.desc())
            )
        )


def revoke_share(db: Database, token: str) -> bool:
    with db.write() as session:
        share = session.get(Share, token)
        if share is None or share.revoked_at is not None:
            return False
        share.revoked_at = now()
        return True
