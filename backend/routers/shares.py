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

from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Response, status
from pydantic import Field

from backend.auth import require_writer
from backend.state import StateDep
from backend.store import repository as repo
from workers.engine.spec import StrictModel

router = APIRouter(prefix="/api", tags=["shares"])


class ShareRequest(StrictModel):
    runs: list[str] = Field(min_length=1, max_length=50, description="Run ids to share.")


@router.post("/shares", status_code=status.HTTP_201_CREATED, dependencies=[Depends(require_writer)])
def create_share(body: ShareRequest, state: StateDep) -> dict[str, Any]:
    """A read-only link to one run or a comparison of several."""
    run_ids = list(dict.fromkeys(body.runs))
    found = {r["id"] for r in repo.get_runs(state.db, run_ids)}
    missing = [i for i in run_ids if i not in found]
    if missing:
        index = body.runs.index(missing[0])
        raise HTTPException(
            422, [{"loc": ["body", "runs", index], "msg": f"no run {missing[0]!r}"}]
        )
    return repo.create_share(state.db, run_ids)


@router.get("/shares", dependencies=[Depends(require_writer)])
def list_shares(state: StateDep) -> dict[str, Any]:
    """Active share links."""
    return {"data": repo.list_shares(state.db)}


@router.get("/shares/{token}")
def get_share(token: str, state: StateDep) -> dict[str, Any]:
    """What a share link shows."""
    share = repo.get_share(state.db, token)
    if share is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share link (or it was revoked)")
    return share


@router.delete(
    "/shares/{token}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=[Depends(require_writer)],
)
def revoke_share(token: str, state: StateDep) -> Response:
    """Revoke a share link."""
    if not repo.revoke_share(state.db, token):
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such share link")
    return Response(status_code=status.HTTP_204_NO_CONTENT)
