"""``GET /api/health``: is the service usable, and if not, which part is down.

Response: ``{"status": "ok" | "degraded", "database": {"ok", "backend", "error"},
"redis": {"ok", "error"}, "workers": {"ok", "count", "train", "projection", "items"},
"auth": {"write_protected", "private"}, "version"}`` (:class:`backend.schemas.Health`).
``status`` is ``ok`` when the database and Redis answer and at least one train worker has
announced itself in the last ~10 s. The dashboard shows the failing part by name.
"""

from __future__ import annotations

from typing import Any

import redis
from anyio import to_thread
from fastapi import APIRouter
from sqlalchemy.exc import SQLAlchemyError

from backend.broker import TRAIN_GPU_QUEUE, TRAIN_QUEUE, registered_workers
from backend.schemas import Health
from backend.state import ServiceState, StateDep

router = APIRouter(prefix="/api", tags=["health"])


def _workers(state: ServiceState) -> dict[str, Any]:
    client = redis.Redis.from_url(
        state.settings.redis_url, socket_connect_timeout=1, socket_timeout=1
    )
    try:
        items = registered_workers(client, state.settings.redis_url)
    finally:
        client.close()
    train = sum(1 for w in items if TRAIN_QUEUE in w.get("queues", []))
    gpu = sum(1 for w in items if TRAIN_GPU_QUEUE in w.get("queues", []))
    projection = sum(1 for w in items if "projection" in w.get("queues", []))
    return {
        "ok": train > 0,
        "count": len(items),
        "train": train,
        "gpu": gpu,
        "projection": projection,
        "items": items,
    }


def _health(state: ServiceState) -> dict[str, Any]:
    database: dict[str, Any] = {
        "ok": True,
        "backend": "sqlite" if state.db.is_sqlite else "postgresql",
    }
    try:
        state.db.ping()
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
        "version": "0.1.0",
    }


@router.get("/health", response_model=Health)
async def health(state: StateDep) -> Health:
    """Database, Redis and worker reachability."""
    return Health.model_validate(await to_thread.run_sync(_health, state))
