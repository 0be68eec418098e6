"""The dashboard's pages and static files (written in ``frontend/``).

``/`` -> ``index.html``, ``/launch`` -> ``launch.html``, ``/runs/{id}`` -> ``run.html``,
``/compare`` -> ``compare.html``, ``/sweeps/{id}`` -> ``sweep.html``, ``/s/{token}`` ->
``run.html``, ``compare.html`` or ``sweep.html`` (by the share's kind; sets the
``collapse_lab_share`` cookie; the page reads ``GET /api/shares/{token}`` to learn which runs),
``/static/...`` -> ``frontend/...``, and ``/static/vendor/plotly.min.js`` from the installed
plotly package (no CDN).
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, status
from fastapi.responses import FileResponse, HTMLResponse, Response

from backend.auth import SHARE_COOKIE
from backend.state import StateDep
from backend.store import shares as share_store

router = APIRouter(include_in_schema=False)
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
MISSING_PAGE = """<!doctype html><meta charset="utf-8"><title>Collapse Lab</title>
<p>The dashboard page <code>{name}</code> is not in <code>{folder}</code>. The API is up:
see <a href="/docs">/docs</a>.</p>"""
# a share link is opened in a browser: its 404 is a page, not the API's JSON
SHARE_MISSING_PAGE = """<!doctype html><meta charset="utf-8"><title>Collapse Lab</title>
<h1>No such share link</h1><p>This link does not exist, or whoever made it has revoked it: ask
them for a new one.</p>"""


def page(state: StateDep, name: str) -> Response:
    path = state.settings.frontend_dir / name
    if not path.is_file():
        return HTMLResponse(
            MISSING_PAGE.format(name=name, folder=state.settings.frontend_dir), status_code=503
        )
    return FileResponse(path, media_type="text/html", headers={"Cache-Control": "no-cache"})


@router.get("/static/vendor/plotly.min.js")
def plotly_js() -> FileResponse:
    return FileResponse(
        PLOTLY_JS,
        media_type="text/javascript",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get("/")
def index_page(state: StateDep) -> Response:
    return page(state, "index.html")


@router.get("/launch")
def launch_page(state: StateDep) -> Response:
    return page(state, "launch.html")


@router.get("/runs/{run_id}")
def run_page(run_id: str, state: StateDep) -> Response:
    return page(state, "run.html")


@router.get("/sweeps/{sweep_id}")
def sweep_page(sweep_id: str, state: StateDep) -> Response:
    return page(state, "sweep.html")


@router.get("/compare")
def compare_page(state: StateDep) -> Response:
    return page(state, "compare.html")


@router.get("/s/{token}")
def share_page(token: str, state: StateDep) -> Response:
    share = share_store.get_share(state.db, token)
    if share is None:
        return HTMLResponse(SHARE_MISSING_PAGE, status_code=status.HTTP_404_NOT_FOUND)
    pages = {"run": "run.html", "compare": "compare.html", "sweep": "sweep.html"}
    response = page(state, pages[share.kind])
    response.set_cookie(SHARE_COOKIE, token, httponly=True, samesite="lax", path="/")
    return response
