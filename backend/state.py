"""The API process's shared objects, and the FastAPI dependencies that hand them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from celery import Celery
from fastapi import Depends, Request

from backend.deployment import RedisNames
from backend.dispatch import enqueue_run
from backend.events import EventHub
from backend.read_cache import ReadCache
from backend.settings import Settings
from backend.store.database import Database


@dataclass
class ServiceState:
    settings: Settings
    db: Database
    hub: EventHub
    celery: Celery
    names: RedisNames  # the deployment's keys and channel in Redis
    cache: ReadCache = field(init=False)

    def __post_init__(self) -> None:
        self.cache = ReadCache(live=lambda: self.hub.connected)
        self.hub.listeners.append(self.cache.on_event)

    def enqueue_run(self, run_id: str) -> bool:
        """Send the run's train task; remember whether it went out (the reaper retries)."""
        return enqueue_run(self.db, self.celery, self.settings, run_id)


async def get_state(request: Request) -> ServiceState:
    """Async because it never blocks: FastAPI runs a plain ``def`` dependency in a worker
    thread, and this one is on every request."""
    service: ServiceState = request.app.state.service
    return service


StateDep = Annotated[ServiceState, Depends(get_state)]
