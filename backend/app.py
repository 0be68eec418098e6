"""The FastAPI application: ``create_app(settings)``; run with
``uvicorn --factory backend.app:create_app``.

On start-up it migrates the database, subscribes to the Redis event channel and starts the
reaper (a run whose worker stopped sending heartbeats is requeued, see
:func:`backend.dispatch.reap_once`) and the broker check (queued runs whose task is not in
Redis are sent again, see :class:`backend.dispatch.BrokerWatch`). The HTTP API is described
at ``/docs`` and ``/openapi.json`` (every request and response model is in
:mod:`backend.schemas`); the routers' module docstrings summarise each resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from anyio import to_thread
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from backend.alerts import AlertLoop
from backend.body_limits import BodyLimits, http_error_handler, validation_error_handler
from backend.broker import make_celery
from backend.deployment import RedisNames
from backend.dispatch import BrokerWatch, housekeeping, reap_once
from backend.events import EventHub, Publisher
from backend.http_methods import HeadAndAllow
from backend.routers import (
    events,
    external_runs,
    health,
    methods,
    pages,
    reports,
    runs,
    shares,
    sweeps,
)
from backend.routers.external_runs import EPOCH_MEDIA_TYPE, EPOCH_PATH_PATTERN
from backend.settings import Settings, get_settings
from backend.state import ServiceState
from backend.store.database import Database
from backend.validation import reject_unknown_query

log = logging.getLogger(__name__)

DESCRIPTION = """Launch self-supervised learning runs, watch their collapse diagnostics live
(Server-Sent Events), compare them and share read-only links. Statuses: queued, running,
succeeded, failed, cancelled."""


async def _reaper_loop(state: ServiceState) -> None:
    while True:
        await asyncio.sleep(state.settings.reaper_interval_s)
        reap = partial(reap_once, state.db, state.celery, state.settings)
        await to_thread.run_sync(housekeeping, "reaper pass", reap)


BROKER_POLL_S = 2.0  # how soon a Redis that came back is noticed (one INFO per poll)


async def _broker_watch_loop(watch: BrokerWatch) -> None:
    while True:
        await asyncio.sleep(BROKER_POLL_S)
        await to_thread.run_sync(housekeeping, "broker check", watch.poll)


DATABASE_RETRY_AFTER_S = 2


async def database_unreachable_handler(_request: Request, exc: Exception) -> JSONResponse:
    """503 with ``Retry-After`` for a request that could not reach the database (a PostgreSQL
    restart, SQLite still locked after its busy timeout), instead of a 500 and a traceback in
    the log for each: the service is fine and answers again once the database is back."""
    log.warning("request failed, database unreachable: %s", str(exc).splitlines()[0])
    return JSONResponse(
        status_code=503,
        content={"detail": "the database is unreachable; retry in a few seconds"},
        headers={"Retry-After": str(DATABASE_RETRY_AFTER_S)},
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API with its routers, the dashboard's pages and static files."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(settings.resolved_database_url)
        await to_thread.run_sync(db.migrate)
        names = await to_thread.run_sync(RedisNames.of, db)
        # the channel carries the deployment id, which the migrated database holds
        publisher = Publisher(settings.redis_url, names.channel)
        db.on_commit = publisher.publish
        state = ServiceState(
            settings=settings,
            db=db,
            hub=EventHub(settings.redis_url, names.channel),
            celery=make_celery(settings, names),
            names=names,
        )
        app.state.service = state
        await state.hub.start()
        # Everything loaded so far lives as long as the process: moved out of the collector's
        # reach, a full collection no longer walks it and stalls every request for ~100 ms.
        gc.collect()
        gc.freeze()
        watch = BrokerWatch(db, state.celery, settings)
        alerts = AlertLoop(db, settings)
        alerts.start()
        timers = [
            asyncio.create_task(_reaper_loop(state), name="reaper"),
            asyncio.create_task(_broker_watch_loop(watch), name="broker-watch"),
        ]
        try:
            yield
        finally:
            for timer in timers:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await timer
            watch.close()
            await to_thread.run_sync(alerts.stop)
            await state.hub.stop()
            publisher.close()
            db.dispose()

    # The docs pages (/docs, /redoc) load Swagger UI and ReDoc from fastapi-offline's package
    # folder (/static-offline-docs), never from a CDN, so they work without network.
    app = FastAPIOffline(
        title="Collapse Lab",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.add_middleware(
        BodyLimits,
        max_bytes=settings.max_body_bytes,
        # external runs' epoch uploads: binary, up to MAX_EPOCH_BYTES, read by their route
        streamed={EPOCH_MEDIA_TYPE: settings.max_epoch_bytes},
        typed_paths={EPOCH_PATH_PATTERN: EPOCH_MEDIA_TYPE},  # its 415 names that type
    )
    app.add_middleware(HeadAndAllow, routes=app.routes)
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_exception_handler(OperationalError, database_unreachable_handler)
    for module in (health, methods, runs, external_runs, sweeps, events, shares, reports):
        app.include_router(module.router, dependencies=[Depends(reject_unknown_query)])
    app.include_router(pages.router)  # a page keeps its own state in its query (filters, page)
    app.mount(
        "/static", StaticFiles(directory=settings.frontend_dir, check_dir=False), name="static"
    )
    return app
