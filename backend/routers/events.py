"""Server-Sent Events: ``GET /api/runs/{id}/events`` and ``GET /api/events``.

The wire protocol (event types, data, ids, resume, keep-alives) is described in
:mod:`backend.events`. Both accept the ``Last-Event-ID`` header (EventSource sends it when it
reconnects) or a ``last_event_id`` query parameter.
"""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query
from fastapi.responses import StreamingResponse

from backend.auth import ReadAccess, read_access
from backend.events import list_event_stream, parse_last_event_id, run_event_stream
from backend.routers.runs import readable_run
from backend.state import StateDep
from backend.store import repository as repo

router = APIRouter(prefix="/api", tags=["events"])
Access = Annotated[ReadAccess, Depends(read_access)]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
SSE_RESPONSES = {200: {"content": {"text/event-stream": {}}, "description": "event stream"}}


@router.get("/runs/{run_id}/events", response_class=StreamingResponse, responses=SSE_RESPONSES)
async def run_events(
    run_id: str,
    state: StateDep,
    access: Access,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**31 - 1)] = None,
) -> StreamingResponse:
    """History after the resume point, then live ``epoch``/``status``/``projection``/
    ``progress`` events of one run."""
    await to_thread.run_sync(readable_run, state, access, run_id)
    after = parse_last_event_id(last_event_id_header, last_event_id)
    stream = run_event_stream(state.db, state.hub, run_id, after, state.settings.sse_keepalive_s)
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get("/events", response_class=StreamingResponse, responses=SSE_RESPONSES)
async def all_events(
    state: StateDep,
    access: Access,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[int | None, Query(ge=0, le=2**62)] = None,
) -> StreamingResponse:
    """Every run's ``status`` and ``epoch`` events (and live ``progress``), for the run list.
    Without a resume point it starts with what happens next."""
    if last_event_id_header is None and last_event_id is None:
        after = await to_thread.run_sync(repo.last_global_event_id, state.db)
    else:
        after = parse_last_event_id(last_event_id_header, last_event_id)
    stream = list_event_stream(
        state.db, state.hub, after, state.settings.sse_keepalive_s, access.can_read
    )
    return StreamingResponse(stream, media_type="text/event-stream", headers=SSE_HEADERS)
