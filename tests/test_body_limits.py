"""BodyLimits on a stand-in app: an upload media type registered in ``streamed`` gets its
own bound and reaches the route unread (the service tests cover the JSON routes)."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from backend.body_limits import BodyLimits

UPLOAD = "application/x-collapse-lab-epoch"


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


def client() -> TestClient:
    app = Starlette(routes=[Route("/up", echo_size, methods=["PUT", "POST"])])
    app.add_middleware(BodyLimits, max_bytes=1024, streamed={UPLOAD: 10_000})
    return TestClient(app)


def test_a_streamed_media_type_has_its_own_bound() -> None:
    with client() as http:
        fits = http.put("/up", content=b"x" * 5000, headers={"content-type": UPLOAD})
        assert fits.status_code == 200 and fits.json() == {"bytes": 5000}
        over = http.put("/up", content=b"x" * 20_000, headers={"content-type": UPLOAD})
        assert over.status_code == 413
        json_over = http.post(
            "/up", content=b"[" + b"1," * 1000 + b"1]", headers={"content-type": "application/json"}
        )
        assert json_over.status_code == 413
        assert (
            http.post("/up", content=b"abc", headers={"content-type": "text/plain"}).status_code
            == 415
        )
        assert http.post("/up", json=[1, 2]).json() == {"bytes": 5}
