"""Request bodies: a size bound enforced before anything parses them, a JSON media type, and
422s that never echo what was sent.

:class:`BodyLimits` is plain ASGI, so it runs before FastAPI reads the body: a request whose
``Content-Length`` is above ``MAX_BODY_BYTES`` is answered 413 without parsing it; a
chunked body is read up to the bound and answered 413 as soon as it passes it. Before the 413
goes out, the rest of the body is read and thrown away (up to ``DISCARD_MAX_BYTES`` and
``DISCARD_MAX_S``, as nginx's lingering close does): a client that sends its whole body before
it reads the answer (Python's urllib) would otherwise find the connection closed under it
(connection reset, broken pipe) and never see the 413. Nothing of it is kept in memory. A non-empty
body must say ``Content-Type: application/json`` (or ``+json``), else 415: nothing is taken
as JSON by guesswork, and a cross-site HTML form (which cannot send that type) cannot launch
runs. A route that takes large bodies of another media type (an upload) registers it in
``streamed`` with its own bound: such a body is checked against that bound (``Content-Length``
first, then as it streams) but not read here, so it never sits in memory twice. A streamed
body that passes its bound while the route reads it (chunked, no ``Content-Length``) makes that
read raise; the route's answer is dropped and the request answered 413 here, after the same
bounded discard. Such a route's path may be listed in ``typed_paths`` with its media type: a
body of another type sent there gets a 415 that names that type, not JSON.

A 422 (:func:`validation_error_handler`) always encodes: a string sent with a lone surrogate
(``"\\ud800"`` in the request's JSON) comes back with the surrogate written out as ``\\ud800``.
A string no database can store (a lone surrogate, a NUL) is refused here, in a JSON body (in
whichever of UTF-8, -16 or -32 it comes), a query parameter or the path, with a 422 that names
where it is.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from collapse_lab import wire  # the protocol's definition of a string it can carry
from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from contract.strict import error_message

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
# The longest string a 422 shows back as the ``input`` it refused.
MAX_ECHOED_INPUT_CHARS = 100
# How much of a refused body is read and discarded before the 413, so that the client reads it.
DISCARD_MAX_BYTES = 64 * 2**20
DISCARD_MAX_S = 10.0


class _TooLarge(Exception):
    """A streamed body passed its bound while the app was reading it."""


def _is_json(media_type: str) -> bool:
    return media_type == "application/json" or media_type.endswith("+json")


class BodyLimits:
    """413 above ``max_bytes``, 415 for a body that is not JSON (nor another listed type).
    ``typed_paths``: a regular expression (searched in the request's path) -> the media type
    its route takes, which the 415 names instead of JSON."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        streamed: Mapping[str, int] | None = None,
        typed_paths: Mapping[str, str] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.streamed = dict(streamed or {})
        self.typed_paths = [(re.compile(k), v) for k, v in (typed_paths or {}).items()]

    def _expected_type(self, path: str) -> str:
        """The media type the route of ``path`` takes (JSON unless ``typed_paths`` says)."""
        return next((t for p, t in self.typed_paths if p.search(path)), "application/json")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (loc := _nul_in_address(scope)) is not None:
            await self._refuse(send, 422, [_nul_error(loc)])  # before any body is read
            return
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        limit = self.streamed.get(media_type, self.max_bytes)
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            if headers.get("expect", "").lower() != "100-continue":  # else nothing was sent
                await _discard(receive)
            await self._refuse(send, 413, self._too_large(limit, media_type in self.streamed))
            return
        if media_type in self.streamed:
            await self._streamed(scope, receive, send, limit)
            return
        body, more = b"", True
        while more:  # read it all here (bounded), so nothing downstream waits on a slow client
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                if more:
                    await _discard(receive)
                await self._refuse(send, 413, self._too_large(self.max_bytes, False))
                return
        if body and not _is_json(media_type):
            shown = media_type or "none"
            expected = self._expected_type(scope.get("path", ""))
            detail = (
                f"the body must be JSON (Content-Type: application/json), not {shown}"
                if expected == "application/json"
                else f"Content-Type must be {expected}, not {shown}"  # as the route says it
            )
            await self._refuse(send, 415, detail)
            return
        if body and (found := _unstorable_string_at(body)) is not None:
            await self._refuse(send, 422, [_unstorable_error(*found)], close=False)
            return

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _streamed(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        """Run the app on a ``receive`` that raises once more than ``limit`` bytes came, and
        answer 413 here: whatever the app made of that (FastAPI turns it into a 400 on a route
        that parses its body) is not sent."""
        seen, more, over, started = 0, True, False, False

        async def bounded() -> Message:
            nonlocal seen, more, over
            if over:  # the rest of the body is the discard's, not the app's
                raise _TooLarge
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                more = message.get("more_body", False)
                over = seen > limit
                if over:
                    raise _TooLarge
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            if over and not started:
                return
            started = True
            await send(message)

        try:
            await self.app(scope, bounded, watched)
        except _TooLarge:
            if started:  # the app read its body while answering: too late for a 413
                raise
        if over and not started:
            if more:
                await _discard(receive)
            await self._refuse(send, 413, self._too_large(limit, True))

    @staticmethod
    def _too_large(limit: int, streamed: bool) -> str:
        variable = "" if streamed else " (MAX_BODY_BYTES)"
        return f"the request body is larger than this server's limit of {limit} bytes{variable}"

    @staticmethod
    async def _refuse(send: Send, status: int, detail: Any, close: bool = True) -> None:
        """Answer ``{"detail": detail}``, closing the connection unless ``close`` is False
        (when the whole body was read)."""
        payload = json.dumps({"detail": detail}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


async def _discard(receive: Receive) -> None:
    """Read what is left of the request body and drop it, up to ``DISCARD_MAX_BYTES`` and
    ``DISCARD_MAX_S`` (beyond them the connection is closed with the body still coming)."""
    discarded = 0
    deadline = time.monotonic() + DISCARD_MAX_S
    while discarded <= DISCARD_MAX_BYTES and (left := deadline - time.monotonic()) > 0:
        try:
            message = await asyncio.wait_for(receive(), left)
        except TimeoutError:
            return
        if message["type"] != "http.request":
            return
        discarded += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


# A JSON escape of a UTF-16 surrogate (U+D800 to U+DFFF) or of NUL: only a body with one can
# hold a string that is not valid Unicode (raw bytes that are not UTF-8 do not parse as JSON)
# or one that PostgreSQL's text and JSON types refuse (JSON escapes every control character).
_UNSTORABLE_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")


def _unstorable_string_at(body: bytes) -> tuple[list[str | int], str] | None:
    """Where in a JSON body (a ``loc`` after ``"body"``: keys and indices) a string or key
    cannot be stored, and that string: a lone surrogate (``"\\ud800"`` without its low half),
    which Python's JSON parser takes but nothing can encode as UTF-8 afterwards (the database
    driver, the response), or a NUL (``"\\u0000"``), which PostgreSQL's text and JSON types
    refuse; None when there is none, or when the body is not JSON (the route answers that)."""
    try:  # as the route's parser reads it: JSON may come in UTF-16 or UTF-32 too
        text = body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        return None
    if not _UNSTORABLE_ESCAPE.search(text):
        return None
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return wire.unstorable_text(parsed)


def _unstorable_error(where: list[Any], text: str) -> dict[str, Any]:
    """The 422 error of :func:`_unstorable_string_at`, in FastAPI's shape."""
    if wire.is_unicode(text):
        return _nul_error(["body", *where])
    return {
        "type": "string_unicode",
        "loc": _encodable(["body", *where]),
        "msg": "Input should be a valid string: it holds a lone UTF-16 surrogate (a \\ud800 "
        "to \\udfff escape without its pair), which is no Unicode character",
    }


def _nul_in_address(scope: Scope) -> list[Any] | None:
    """Where a request's path (``["path"]``: a run id, a share token) or query parameter
    (``["query", name]``) holds a NUL (``%00``), which no text column can hold: a lookup or
    a search for it would fail in PostgreSQL and match everything in SQLite; None without."""
    path: str = scope.get("path", "")
    if "\x00" in path:
        return ["path"]
    query: bytes = scope.get("query_string", b"")
    if b"%00" not in query:
        return None
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if "\x00" in name or "\x00" in value:
            return ["query", name]
    return None


def _nul_error(loc: list[Any]) -> dict[str, Any]:
    return {
        "type": "string_nul",
        "loc": _encodable(loc),
        "msg": "Input should be a string without NUL characters (\\u0000), which no stored "
        "text can hold",
    }


def _short_input(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= MAX_ECHOED_INPUT_CHARS
    if isinstance(value, float):
        return math.isfinite(value)  # NaN and infinity have no JSON spelling
    return value is None or isinstance(value, bool | int)


def _encodable(value: Any) -> Any:
    """``value`` (JSON-ready) with every string made encodable as UTF-8: a lone surrogate
    (which JSON's ``\\ud800`` escape can carry in, but no UTF-8 response out) is written as
    the text ``\\ud800``."""
    if isinstance(value, str):
        if wire.is_unicode(value):
            return value
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_encodable(item) for item in value]
    if isinstance(value, dict):
        return {_encodable(k): _encodable(v) for k, v in value.items()}
    return value


async def validation_error_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, with each message as :func:`error_message` words it (no "Value
    error, " before a rule's sentence), and ``input`` kept only when it is a short scalar: a
    422 for a megabyte array does not send the megabyte back. Every string in it (an input, a
    field name in ``loc``, a message quoting a value) is made encodable (:func:`_encodable`)."""
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        error = {k: v for k, v in error.items() if k != "url"} | {"msg": error_message(error)}
        if "input" in error and not _short_input(error["input"]):
            del error["input"]
        errors.append(error)
    return JSONResponse(status_code=422, content={"detail": _encodable(jsonable_encoder(errors))})


def _unparsed_body_error(exc: BaseException) -> dict[str, Any] | None:
    """The 422 error of a JSON body FastAPI could not parse for a reason other than its JSON
    syntax (which it answers 422 ``json_invalid`` itself): bytes that are not UTF-8, or
    nesting deeper than the parser goes (its 400 "There was an error parsing the body" says
    neither)."""
    cause = exc.__cause__
    if isinstance(cause, UnicodeDecodeError):
        msg = (
            f"the body is not valid {cause.encoding.upper()} (byte {cause.start}): JSON is "
            "sent as UTF-8"
        )
        return {"type": "json_invalid", "loc": ["body"], "msg": msg}
    if isinstance(cause, RecursionError):
        msg = (
            "the body's JSON is nested too deep for the parser (arrays and objects in one another)"
        )
        return {"type": "json_invalid", "loc": ["body"], "msg": msg}
    return None


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """FastAPI's answer to an HTTPException, but a body it could not parse as UTF-8 or for
    its nesting is a 422 at ``["body"]`` that names the problem (:func:`_unparsed_body_error`)."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and (error := _unparsed_body_error(exc)) is not None:
        return JSONResponse(status_code=422, content={"detail": [error]})
    return await http_exception_handler(request, exc)
