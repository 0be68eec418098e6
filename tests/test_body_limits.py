"""BodyLimits on a stand-in app: an upload media type registered in ``streamed`` gets its
own bound and reaches the route unread (the service tests cover the JSON routes), and chunked
bodies (no Content-Length) over their bound get the same 413 over a real uvicorn server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi.exceptions import RequestValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backend.body_limits import BodyLimits, validation_error_handler
from tests.serving import serving

UPLOAD = "application/x-collapse-lab-epoch"


async def echo_size(request: Request) -> JSONResponse:
    return JSONResponse({"bytes": len(await request.body())})


async def parse(request: Request) -> JSONResponse:
    """As FastAPI does on a route that parses its body: any failure to read it is a 400."""
    try:
        await request.body()
    except Exception:
        return JSONResponse({"detail": "There was an error parsing the body"}, 400)
    return JSONResponse({})


def stand_in() -> Starlette:
    routes = [
        Route("/up", echo_size, methods=["GET", "PUT", "POST"]),
        Route("/parse", parse, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.add_middleware(BodyLimits, max_bytes=1024, streamed={UPLOAD: 10_000})
    return app


@pytest.fixture(scope="module")
def served() -> Iterator[str]:
    """The stand-in app under uvicorn in a thread."""
    with serving(stand_in()) as url:
        yield url


def chunks(count: int, size: int = 1000, byte: bytes = b"x") -> Iterator[bytes]:
    """A body httpx sends chunked: a generator has no length to announce."""
    for _ in range(count):
        yield byte * size


def test_a_streamed_media_type_has_its_own_bound(served: str) -> None:
    with httpx.Client(base_url=served) as http:
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


def test_a_chunked_upload_over_its_bound_gets_413(served: str) -> None:
    # 200 kB, all of it sent before the client reads: the 413 still arrives (lingering close)
    over = httpx.put(f"{served}/up", content=chunks(200), headers={"content-type": UPLOAD})
    assert over.status_code == 413
    assert over.json() == {
        "detail": "the request body is larger than this server's limit of 10000 bytes"
    }
    sized = httpx.put(f"{served}/up", content=b"x" * 20_000, headers={"content-type": UPLOAD})
    assert sized.status_code == 413 and sized.json() == over.json()
    fits = httpx.put(f"{served}/up", content=chunks(5), headers={"content-type": UPLOAD})
    assert fits.status_code == 200 and fits.json() == {"bytes": 5000}
    # a route that answers a failed read itself: its answer gives way to the 413
    caught = httpx.post(f"{served}/parse", content=chunks(20), headers={"content-type": UPLOAD})
    assert caught.status_code == 413 and caught.json() == over.json()


def test_a_chunked_json_body_over_the_bound_gets_413(served: str) -> None:
    json_type = {"content-type": "application/json"}
    over = httpx.post(f"{served}/up", content=chunks(200, 100, b" "), headers=json_type)
    assert over.status_code == 413
    assert over.json() == {
        "detail": "the request body is larger than this server's limit of 1024 bytes "
        "(MAX_BODY_BYTES)"
    }
    fits = httpx.post(f"{served}/up", content=iter([b"[1,", b" 2]"]), headers=json_type)
    assert fits.status_code == 200 and fits.json() == {"bytes": 6}


def test_a_lone_surrogate_in_a_json_body_is_a_422_before_the_route(served: str) -> None:
    """Python's JSON parser takes ``"\\ud800"``; no UTF-8 encoder takes the string after."""
    json_type = {"content-type": "application/json"}
    with httpx.Client(base_url=served) as http:
        lone = http.post("/parse", content=b'{"a": [1, {"b": "x\\ud800"}]}', headers=json_type)
        assert lone.status_code == 422
        (error,) = lone.json()["detail"]
        assert error["loc"] == ["body", "a", 1, "b"] and error["type"] == "string_unicode"
        key = http.post("/parse", content=b'{"\\udfff": 1}', headers=json_type)
        assert key.status_code == 422 and key.json()["detail"][0]["loc"] == ["body", "\\udfff"]
        for fine in (b'{"a": "\\ud83c\\udf89"}', b'{"a": "\\\\ud800"}', b'{"a": "\\ud83c'):
            assert http.post("/parse", content=fine, headers=json_type).status_code == 200


def test_a_nul_in_a_json_body_or_a_query_is_a_422_before_the_route(served: str) -> None:
    """PostgreSQL's text and JSON types refuse NUL (a 500 from the driver, found by an
    audit); SQLite stored it and a search for it matched every run. Refused wherever it is,
    by name; an escaped backslash before 0000 is no NUL."""
    json_type = {"content-type": "application/json"}
    with httpx.Client(base_url=served) as http:
        value = http.post("/parse", content=b'{"note": "a\\u0000b"}', headers=json_type)
        assert value.status_code == 422
        (error,) = value.json()["detail"]
        assert error["loc"] == ["body", "note"] and error["type"] == "string_nul"
        assert "NUL" in error["msg"]
        nested = http.post("/parse", content=b'{"config": {"k\\u0000": [1]}}', headers=json_type)
        assert nested.json()["detail"][0]["loc"] == ["body", "config", "k\x00"]
        query = http.get("/up", params={"project": "x", "q": "a\x00"})
        assert query.status_code == 422
        assert query.json()["detail"][0]["loc"] == ["query", "q"]
        for fine in (b'{"a": "\\\\u0000"}', b'{"a": "u0000 %00"}'):
            assert http.post("/parse", content=fine, headers=json_type).status_code == 200
        assert http.get("/up", params={"q": "%00 as text"}).status_code == 200
        # JSON in UTF-16 or UTF-32 is read by the route's parser as well: checked as read
        for encoding in ("utf-16", "utf-32-le"):
            wide = '{"note": "a\\u0000b"}'.encode(encoding)
            refused = http.post("/parse", content=wide, headers=json_type)
            assert refused.status_code == 422, encoding
            assert refused.json()["detail"][0]["loc"] == ["body", "note"]
        in_path = http.get("/up%00x")
        assert in_path.status_code == 422 and in_path.json()["detail"][0]["loc"] == ["path"]


def test_a_422_with_a_lone_surrogate_still_encodes() -> None:
    """Whatever a validation error quotes (input, a key in ``loc``, the message) is sent."""
    error = RequestValidationError(
        [{"loc": ("body", "\ud800"), "msg": "bad \udfff", "type": "x", "input": "\ud800"}]
    )
    handled = validation_error_handler(Request({"type": "http"}), error)
    # in a thread of its own: a test before this one in the process may have left an event
    # loop running in this thread, where asyncio.run refuses to start
    with ThreadPoolExecutor(1) as pool:
        response = pool.submit(asyncio.run, handled).result()
    assert response.status_code == 422
    (detail,) = json.loads(response.body)["detail"]
    assert detail == {
        "loc": ["body", "\\ud800"],
        "msg": "bad \\udfff",
        "type": "x",
        "input": "\\ud800",
    }
