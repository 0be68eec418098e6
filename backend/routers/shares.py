"""Read-only share links.

- ``POST /api/shares`` ``{"runs": ["id"]}`` (one run) or ``{"runs": ["a", "b"]}`` (a
  comparison) -> 201 ``{"token", "kind": "run" | "compare", "runs", "url": "/s/<token>",
  "created_at", "revoked": false}``. Needs the API token when one is set.
- ``GET /api/shares`` -> ``{"data": [shares]}`` (active ones; needs the API token).
- ``GET /api/shares/{token}`` -> the share (public: the token is the secret); 404 once
  revoked. The ``/s/{token}`` page uses it to know which run(s) to show.
- ``DELETE /api/shares/{token}`` -> 204: revokes the link at once.

Opening ``/s/<token>`` sets the ``collapse_lab_share`` cookie, which lets the page read those
runs (and nothing else) in private mode; a share never allows launching or cancelling.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import Field

from backend.auth import require_writer
from backend.schemas import NOT_FOUND, UNAUTHORIZED, ShareList, ShareOut, share_from_row
from backend.state import StateDep
from backend.store import runs as run_store
from backend.store import shares as share_store
from contract import StrictInput

router = APIRouter(prefix="/api", tags=["shares"], responses=UNAUTHORIZED)


class ShareRequest(StrictInput):
    runs: list[str] = Field(min_length=1, max_length=50, description="Run ids to share.")


@router.post(
    "/shares",
    status_code=status.HTTP_201_CREATED,
    dependencies=[Depends(require_writer)],
    response_model=ShareOut,
)
def create_share(body: ShareRequest, state: StateDep) -> ShareOut:
    """A read-only link to one run or a comparison of several."""
    run_ids = list(dict.fromkeys(body.runs))
    found = {r.id for r in run_store.get_runs(state.db, run_ids)}
    missing = [i for i in run_ids if i not in found]
    if missing:
        index = body.runs.index(missing[0])
        raise RequestValidationError(
            [
                {
                    "loc": ["body", "runs", index],
                    "msg": f"no run {missing[0]!r}",
                    "type": "value_error",
                }
            ]
        )
    return share_from_row(share_store.create_share(state.db, run_ids))


@router.get("/shares", dependencies=[Depends(require_writer)], response_model=ShareList)
def list_shares(state: StateDep) -> ShareList:
    """Active share links."""
    return ShareList(data=[share_from_row(s) for s in share_store.list_shares(state.db)])


@router.get("/shares/{token}", response_model=ShareOut, responses=NOT_FOUND)
def get_share(token: str, state: StateDep) -> ShareOut:
    """What a share link shows."""
    share = share_store.get_share(state.db, token)
    if share is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share link (or it was revoked)")
    return share_from_row(share)


@router.delete(
    "/shares/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_writer)],
    responses=NOT_FOUND,
)
def revoke_share(token: str, state: StateDep) -> Response:
    """Revoke a share link."""
    if not share_store.revoke_share(state.db, token):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share link")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
