"""``GET /api/health``: is the service usable, and if not, which part is down.

Response: ``{"status": "ok" | "degraded", "database": {"ok", "backend", "error"},
"redis": {"ok", "error"}, "workers": {"ok", "count", "train", "projection", "items"},
"auth": {"write_protected", "private"}, "alerts": {"pending", "failed", "last_error",
"last_error_receiver"...}, "version"}`` (:class:`backend.schemas.Health`); a receiver is
named by its scheme and host, never by its URL (a webhook URL is a secret).
``status`` is ``ok`` when the database and Redis answer and at least one train worker has
announced itself in the last ~10 s. The dashboard shows the failing part by name. In private
mode the workers' ``items`` (host names, pids, devices) are listed only for the token.
"""

from __future__ import annotations

from typing import Any

import redis
from anyio import to_thread
from fastapi import APIRouter, Request
from sqlalchemy.exc import SQLAlchemyError

from backend.alerts import public_error, receiver_label
from backend.auth import presented_token, token_is_valid
from backend.broker import (
    INGEST_QUEUE,
    PROJECTION_QUEUE,
    TRAIN_GPU_QUEUE,
    TRAIN_QUEUE,
    registered_workers,
)
from backend.schemas import Health
from backend.state import ServiceState, StateDep
from backend.store.alerts import delivery_summary

router = APIRouter(prefix="/api", tags=["health"])


def _workers(state: ServiceState) -> dict[str, Any]:
    client = redis.Redis.from_url(
        state.settings.redis_url, socket_connect_timeout=1, socket_timeout=1
    )
    try:
        items = registered_workers(client, state.names)
    finally:
        client.close()
    train = sum(1 for w in items if TRAIN_QUEUE in w.queues)
    gpu = sum(1 for w in items if TRAIN_GPU_QUEUE in w.queues)
    projection = sum(1 for w in items if PROJECTION_QUEUE in w.queues)
    ingest = sum(1 for w in items if INGEST_QUEUE in w.queues)
    return {
        "ok": train > 0,
        "count": len(items),
        "train": train,
        "gpu": gpu,
        "projection": projection,
        "ingest": ingest,
        "items": items,
    }


def _health(state: ServiceState) -> dict[str, Any]:
    database: dict[str, Any] = {
        "ok": True,
        "backend": "sqlite" if state.db.is_sqlite else "postgresql",
    }
    alerts: dict[str, Any] | None = None
    try:
        state.db.ping()
        summary = delivery_summary(state.db)
        alerts = {
            "receivers": len(state.settings.alert_webhook_urls),
            "pending": summary.pending,
            "retrying": summary.retrying,
            "delivered": summary.delivered,
            "failed": summary.failed,
            "last_error": public_error(summary.last_error),
            "last_error_receiver": summary.last_error_url
            and receiver_label(summary.last_error_url),
        }
    except SQLAlchemyError as exc:
        database.update(ok=False, error=str(exc).splitlines()[0])
    redis_status: dict[str, Any] = {"ok": True}
    workers: dict[str, Any] = {
        "ok": False,
        "count": 0,
        "train": 0,
        "gpu": 0,
        "projection": 0,
        "items": [],
    }
    try:
        workers = _workers(state)
    except (redis.RedisError, OSError) as exc:
        redis_status = {"ok": False, "error": str(exc)}
        workers["error"] = "unknown while Redis is unreachable"
    ok = database["ok"] and redis_status["ok"] and workers["ok"]
    return {
        "status": "ok" if ok else "degraded",
        "database": database,
        "redis": redis_status,
        "workers": workers,
        "auth": {
            "write_protected": bool(state.settings.api_token),
            "private": state.settings.private,
        },
        "alerts": alerts,
        "version": "0.1.0",
    }


@router.get("/health", response_model=Health)
async def health(state: StateDep, request: Request) -> Health:
    """Database, Redis and worker reachability."""
    report = await to_thread.run_sync(_health, state)
    if state.settings.private and not token_is_valid(state, presented_token(request)):
        report["workers"]["items"] = []
    return Health.model_validate(report)
