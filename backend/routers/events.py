"""Server-Sent Events: ``GET /api/runs/{id}/events`` and ``GET /api/events``.

The wire protocol (event types, data, ids, resume, keep-alives) is described in
:mod:`backend.events`. Both accept the ``Last-Event-ID`` header (EventSource sends it when it
reconnects) or a ``last_event_id`` query parameter.
"""

from __future__ import annotations

from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query
from sse_starlette import EventSourceResponse

from backend.auth import ReadAccess, read_access
from backend.events import (
    GLOBAL_EVENT_ID_MAX,
    RUN_EVENT_ID_MAX,
    event_response,
    list_event_stream,
    parse_last_event_id,
    run_event_stream,
)
from backend.routers.runs import readable_run_row
from backend.schemas import NOT_FOUND, UNAUTHORIZED
from backend.state import StateDep
from backend.store.eventlog import last_global_event_id

router = APIRouter(prefix="/api", tags=["events"], responses=UNAUTHORIZED)
Access = Annotated[ReadAccess, Depends(read_access)]
SSE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "The event stream."}
}


@router.get(
    "/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={**SSE_RESPONSES, **NOT_FOUND},
)
async def run_events(
    run_id: str,
    state: StateDep,
    access: Access,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=RUN_EVENT_ID_MAX)] = None,
) -> EventSourceResponse:
    """History after the resume point, then live ``epoch``/``status``/``projection``/
    ``progress`` events of one run."""
    await to_thread.run_sync(readable_run_row, state, access, run_id)
    after = parse_last_event_id(last_event_id_header, last_event_id, RUN_EVENT_ID_MAX)
    keepalive_s = state.settings.sse_keepalive_s
    return event_response(
        run_event_stream(state.db, state.hub, run_id, after, keepalive_s), keepalive_s
    )


@router.get("/events", response_class=EventSourceResponse, responses=SSE_RESPONSES)
async def all_events(
    state: StateDep,
    access: Access,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=GLOBAL_EVENT_ID_MAX)] = None,
) -> EventSourceResponse:
    """Every run's ``status`` and ``epoch`` events (and live ``progress``), for the run list.
    Without a resume point it starts with what happens next."""
    if last_event_id_header is None and last_event_id is None:
        after = await to_thread.run_sync(last_global_event_id, state.db)
    else:
        after = parse_last_event_id(last_event_id_header, last_event_id, GLOBAL_EVENT_ID_MAX)
    keepalive_s = state.settings.sse_keepalive_s
    stream = list_event_stream(state.db, state.hub, after, keepalive_s, access.can_read)
    return event_response(stream, keepalive_s)
