"""Write protection, private mode and read-only share links.

- ``API_TOKEN`` set: launching, cancelling, deleting and managing shares need the token, as
  ``Authorization: Bearer <token>`` or in the ``collapse_lab_token_<port>`` cookie (which lets
  an ``EventSource`` carry it; the port is in the name because browsers send a cookie to every
  port of a host, so another app on localhost never receives this one). Without ``API_TOKEN``
  everything is open (local use).
- ``PRIVATE=true``: reading needs the token too, or a share token for the shared runs.
- A share token (``POST /api/shares``) grants reading of its runs only, never writing. It is
  accepted from the ``collapse_lab_share`` cookie (set by the ``/s/{token}`` page), the
  ``X-Share-Token`` header or the ``share`` query parameter.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from backend.state import ServiceState, StateDep
from backend.store import shares as share_store
from backend.validation import SHARE_PARAMETER
from contract.strict import shortened

TOKEN_COOKIE_PREFIX = "collapse_lab_token_"
SHARE_COOKIE = "collapse_lab_share"


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(token_cookie_name(request))


def token_cookie_name(request: Request) -> str:
    """The token cookie of the port the browser talks to (``location.port`` in the page)."""
    port = request.url.port or (443 if request.url.scheme == "https" else 80)
    return f"{TOKEN_COOKIE_PREFIX}{port}"


def presented_share(request: Request) -> str | None:
    return (
        request.headers.get("x-share-token")
        or request.query_params.get(SHARE_PARAMETER)
        or request.cookies.get(SHARE_COOKIE)
    )


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8; an environment variable's undecodable bytes (surrogate escapes)
    as they were, and any other lone surrogate as it is, so that this never raises."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def _presented_bytes(token: str) -> bytes:
    """The bytes of a presented token: Starlette decodes header (and cookie) values as
    Latin-1, so encoding them back gives the bytes the client sent (UTF-8 for a UTF-8 token)."""
    try:
        return token.encode("latin-1")
    except UnicodeEncodeError:
        return _utf8(token)


def token_is_valid(state: ServiceState, token: str | None) -> bool:
    """Whether ``token`` is the API token. Compared as bytes, since ``compare_digest`` raises
    TypeError for ``str`` with non-ASCII characters (a 500), and a header may hold any."""
    expected = state.settings.api_token
    if not (expected and token):
        return False
    return secrets.compare_digest(_presented_bytes(token), _utf8(expected))


async def require_writer(request: Request, state: StateDep) -> None:
    """Dependency of every write endpoint: 401 unless the API token is given (when set)."""
    if not state.settings.api_token:
        return
    if not token_is_valid(state, presented_token(request)):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this server is write-protected: send Authorization: Bearer <API_TOKEN>",
            headers={"WWW-Authenticate": "Bearer"},
        )


@dataclass(frozen=True)
class ReadAccess:
    """What the caller may read: everything, or only the runs of a share."""

    all_runs: bool
    run_ids: frozenset[str] = frozenset()
    sweep_ids: frozenset[str] = frozenset()

    def can_read(self, run_id: str) -> bool:
        return self.all_runs or run_id in self.run_ids

    def can_read_sweep(self, sweep_id: str) -> bool:
        return self.all_runs or sweep_id in self.sweep_ids


async def read_access(request: Request, state: StateDep) -> ReadAccess:
    """Dependency of every read endpoint that exposes run data. Async, so that the common
    case (an open server, or the token) costs no worker thread; a share is looked up in one."""
    if not state.settings.private or token_is_valid(state, presented_token(request)):
        return ReadAccess(all_runs=True)
    token = presented_share(request)
    share = await run_in_threadpool(share_store.get_share, state.db, token) if token else None
    if share is not None:
        sweeps = frozenset([share.sweep_id] if share.sweep_id else [])
        return ReadAccess(all_runs=False, run_ids=frozenset(share.run_ids), sweep_ids=sweeps)
    raise HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        "this server is private: send Authorization: Bearer <API_TOKEN> or open a share link",
        headers={"WWW-Authenticate": "Bearer"},
    )


NAMED_ID_CHARS = 40  # ids are 12 characters: a longer one is named by its start


def not_found(kind: str, ident: str) -> HTTPException:
    """404 naming the ``kind`` ("run", "sweep") and the id asked for, shortened."""
    return HTTPException(
        status.HTTP_404_NOT_FOUND, f"no {kind} {shortened(ident, NAMED_ID_CHARS)!r}"
    )


def check_readable(access: ReadAccess, run_id: str) -> None:
    """404 (not 403: do not reveal which ids exist) for a run outside the caller's share."""
    if not access.can_read(run_id):
        raise not_found("run", run_id)
