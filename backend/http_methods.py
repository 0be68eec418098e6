"""HEAD answered on every GET route, and a 405 whose ``Allow`` names every method of the path.

FastAPI's routes answer only the methods they declare, and Starlette's 405 names the methods
of the first route whose path matched: ``curl -I`` (HEAD) got 405 from every page and
endpoint, and ``OPTIONS /api/runs`` said ``Allow: POST`` although ``GET /api/runs`` is there
too (another route). :class:`HeadAndAllow` is plain ASGI: a HEAD request goes through the
app as a GET, and its answer keeps the GET's status and headers (``Content-Length``
included, as RFC 9110 Sec. 9.3.2 asks) without the body; an event stream ends there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

METHODS = ("DELETE", "GET", "PATCH", "POST", "PUT")  # those the routes are declared with


class HeadAndAllow:
    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute]) -> None:
        self.app = app
        self.routes = routes  # the app's list: routers included later are in it too

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        answered = False

        async def reply(message: Message) -> None:
            nonlocal answered
            if message["type"] == "http.response.start" and message["status"] == 405:
                message = {**message, "headers": self._with_allow(scope, message["headers"])}
            if not head or message["type"] == "http.response.start":
                await send(message)
            elif not answered:  # the GET's first body part: the HEAD's answer ends here
                answered = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def request() -> Message:
            if answered:  # a streaming GET (events) hears that its client has gone
                return {"type": "http.disconnect"}
            return await receive()

        await self.app({**scope, "method": "GET"} if head else scope, request, reply)

    def _with_allow(self, scope: Scope, headers: list[Any]) -> list[Any]:
        """The 405's headers with ``Allow`` listing the methods of every route of the path."""
        methods = {
            method
            for method in METHODS
            for route in self.routes
            if not isinstance(route, Mount)  # static files answer their own 405
            and route.matches({**scope, "method": method})[0] == Match.FULL
        }
        if not methods:  # not a route's path (static files): their own Allow
            return headers
        if "GET" in methods:
            methods.add("HEAD")
        kept = [(name, value) for name, value in headers if name.lower() != b"allow"]
        return [*kept, (b"allow", ", ".join(sorted(methods)).encode())]
