"""Requests the API must refuse with a 4xx that says why, never a 500, on the real API
(no workers): epochs far beyond any training, lone surrogates in JSON strings, non-ASCII
tokens, hostile epoch messages, epochs the diagnostics could not measure, an upload of the
wrong media type, and an external run's probe images."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from collapse_lab import wire

from tests.service.stack import TINY_RUN, ServiceStack, iter_sse

BINARY = {"Content-Type": wire.CONTENT_TYPE}
RNG = np.random.default_rng(0)
Z = RNG.standard_normal((16, 4)).astype(np.float32)


@pytest.fixture
def idle(idle_stack: ServiceStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        yield client


def _external_run(client: httpx.Client) -> str:
    response = client.post("/api/external-runs", json={"name": "refusals"})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def _put(client: httpx.Client, run_id: str, epoch: int, body: bytes) -> httpx.Response:
    return client.put(f"/api/external-runs/{run_id}/epochs/{epoch}", content=body, headers=BINARY)


def _refused_at(response: httpx.Response, loc: list[Any], words: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and words in d["msg"] for d in detail), detail


# -- 1. epochs: bounded by wire.MAX_EPOCH --------------------------------------------------


def test_an_epoch_beyond_max_epoch_is_a_422_and_the_run_list_keeps_working(
    idle: httpx.Client,
) -> None:
    run_id = _external_run(idle)
    assert _put(idle, run_id, 0, wire.encode_epoch(0, {"z": Z})).status_code == 202
    for epoch in (wire.MAX_EPOCH + 1, 20_000_000, 2**62, 2**63, 10**30):
        response = _put(idle, run_id, epoch, wire.encode_epoch(epoch, {"z": Z}))
        _refused_at(response, ["path", "epoch"], "log epochs, not steps")
    last = _put(idle, run_id, wire.MAX_EPOCH, wire.encode_epoch(wire.MAX_EPOCH, {"z": Z}))
    assert last.status_code == 202, last.text  # the bound itself is an epoch
    # what an epoch of 2**62 used to break (MemoryError, OverflowError: 500s)
    assert idle.get("/api/runs").status_code == 200
    assert idle.get(f"/api/runs/{run_id}").status_code == 200
    assert idle.get(f"/api/runs/{run_id}/epochs.csv").status_code == 200


def test_epoch_parameters_of_the_read_endpoints_are_bounded(idle: httpx.Client) -> None:
    run_id = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    for since in (wire.MAX_EPOCH + 1, 2**63, 10**30):
        response = idle.get(f"/api/runs/{run_id}/epochs", params={"since": since})
        _refused_at(response, ["query", "since"], "MAX_EPOCH")
    assert idle.get(f"/api/runs/{run_id}/epochs", params={"since": wire.MAX_EPOCH}).json() == []
    for epoch in (2**63, 10**30, -(10**30)):
        response = idle.get(f"/api/runs/{run_id}/projections/{epoch}")
        _refused_at(response, ["path", "epoch"], "MAX_EPOCH")
    assert idle.get(f"/api/runs/{run_id}/projections/{wire.MAX_EPOCH}").status_code == 404


def test_a_last_event_id_beyond_any_id_replays_the_stream_from_the_start(
    idle: httpx.Client,
) -> None:
    run_id = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    for header in ("99999999999999999999", str(2**31), "-3", "junk"):
        events = iter_sse(
            idle, f"/api/runs/{run_id}/events", timeout=30, headers={"Last-Event-ID": header}
        )
        first = next(e for e in events if not isinstance(e, str))
        events.close()
        assert (first.id, first.event) == (1, "status"), header  # the run's first event
    listing = iter_sse(
        idle, "/api/events", timeout=30, headers={"Last-Event-ID": "99999999999999999999"}
    )
    assert next(e for e in listing if not isinstance(e, str)).event == "status"
    listing.close()


# -- 2. lone surrogates: the 422 always encodes -----------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "raw", "loc"),
    [
        ("POST", "/api/runs", '{"method": "simsiam", "note": "\\ud800"}', ["note"]),
        ("POST", "/api/runs", '{"method": "simsiam", "tags": ["a", "\\udfff"]}', ["tags", 1]),
        ("POST", "/api/runs", '{"method": "simsiam", "\\ud800": 1}', ["\\ud800"]),
        ("PATCH", "/api/runs/{run}/labels", '{"note": "\\ud800x"}', ["note"]),
        ("POST", "/api/shares", '{"runs": ["\\ud800"]}', ["runs", 0]),
        (
            "POST",
            "/api/sweeps/preview",
            '{"base": {"preset": "vicreg"}, "grid": {"lr": "\\ud800"}}',
            ["grid", "lr"],
        ),
        (
            "POST",
            "/api/external-runs",
            '{"name": "x", "config": {"deep": [{"k": "\\udc00"}]}}',
            ["config", "deep", 0, "k"],
        ),
    ],
)
def test_a_lone_surrogate_in_a_json_string_gets_a_422_naming_it(
    idle: httpx.Client, method: str, path: str, raw: str, loc: list[Any]
) -> None:
    before = idle.get("/api/runs").json()["count"]
    run_id = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    response = idle.request(
        method,
        path.format(run=run_id),
        content=raw.encode("ascii"),  # the JSON escape itself: no UTF-8 encoder could send it
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", *loc] and error["type"] == "string_unicode", error
    assert "lone UTF-16 surrogate" in error["msg"]
    assert idle.get("/api/runs").json()["count"] == before + 1  # TINY_RUN's only
    assert idle.get(f"/api/runs/{run_id}").json()["note"] == ""


def test_a_surrogate_pair_is_one_character_and_taken(idle: httpx.Client) -> None:
    raw = b'{"method": "simsiam", "epochs": 1, "note": "party \\ud83c\\udf89"}'
    response = idle.post("/api/runs", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text
    assert response.json()["note"] == "party \U0001f389"
    escaped = b'{"method": "simsiam", "epochs": 1, "note": "a backslash: \\\\ud800"}'
    response = idle.post("/api/runs", content=escaped, headers={"Content-Type": "application/json"})
    assert response.status_code == 201 and response.json()["note"] == "a backslash: \\ud800"


# -- 3. non-ASCII tokens: 401, not 500 ----------------------------------------------------------


def test_a_non_ascii_token_is_refused_with_401(private_stack: ServiceStack) -> None:
    with httpx.Client(base_url=private_stack.base_url, timeout=30) as client:
        port = client.base_url.port
        for headers in (
            {b"Authorization": "Bearer ü-token".encode()},  # UTF-8
            {b"Authorization": "Bearer \u00fc".encode("latin-1")},
            {b"Cookie": f"collapse_lab_token_{port}=s3cret-tökèn".encode()},
        ):
            for response in (
                client.post("/api/runs", json=TINY_RUN, headers=headers),
                client.post("/api/external-runs", json={"name": "x"}, headers=headers),
                client.get("/api/runs", headers=headers),
            ):
                assert response.status_code == 401, (headers, response.text)
                assert response.headers["www-authenticate"] == "Bearer"
        token = {"Authorization": "Bearer s3cret-token"}
        assert client.get("/api/runs", headers=token).status_code == 200


# -- 4. hostile epoch messages: a 422 from the decoder ------------------------------------------


def _with_header(header: bytes, payload: bytes = b"") -> bytes:
    return struct.pack("<8sI", wire.MAGIC, len(header)) + header + payload


def _mutated(epoch: int, change: dict[str, Any], array: dict[str, Any] | None = None) -> bytes:
    """A valid message of ``epoch`` with header fields (and z's entry) replaced, written
    with ``allow_nan`` so that NaN and Infinity can be sent; z's bytes move to offset 1024."""
    body = wire.encode_epoch(epoch, {"z": Z}, loss=1.0)
    _, length = struct.unpack_from("<8sI", body)
    header = json.loads(body[12 : 12 + length])
    offset = header["arrays"]["z"]["offset"]
    payload = body[offset : offset + Z.size * 2]  # float16
    header |= change
    header["arrays"]["z"] |= {"offset": 1024, **(array or {})}
    text = json.dumps(header, separators=(",", ":")).encode()
    assert len(text) <= 1012, "the header must end before z"
    return _with_header(text.ljust(1012), payload)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (_with_header(b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
        (_mutated(1, {"loss": float("nan")}), "NaN"),
        (_mutated(1, {"loss": float("inf")}), "Infinity"),
        (_mutated(1, {"loss": True}), "loss must be a finite number"),
        (_mutated(1, {"loss": 10**400}), "loss must be a finite number"),  # beyond float64
        (_mutated(1, {"scalars": {"a": 10**400}}), "scalars"),
        (_mutated(1, {"scalars": {"a\x00b": 1.0}}), "without NUL"),
        (_mutated(1, {}, {"scale": True}), "scale"),
        (_mutated(1, {}, {"shape": [0, 2**62]}), "larger than the body"),
    ],
)
def test_a_hostile_epoch_message_is_a_422(idle: httpx.Client, body: bytes, problem: str) -> None:
    run_id = _external_run(idle)
    response = _put(idle, run_id, 1, body)
    assert response.status_code == 422, response.text
    assert "malformed epoch message" in response.json()["detail"]
    assert problem in response.json()["detail"]


# -- 5. epochs the diagnostics could not measure: refused at upload ---------------------------


def _probabilities(rows: int, columns: int) -> np.ndarray:
    logits = RNG.standard_normal((rows, columns))
    exp = np.exp(logits)
    probabilities: np.ndarray = (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)
    return probabilities


UNMEASURABLE: list[tuple[dict[str, np.ndarray], str]] = [
    ({"z": Z, "h": np.zeros((16, 0), np.float32)}, "h has shape [16, 0], no values"),
    ({"z": Z, "teacher": np.zeros((16, 0), np.float32)}, "teacher has shape [16, 0]"),
    ({"z": Z * 1e16}, "z has values up to"),
    ({"z": Z, "h": np.ones((16, 8), np.float32) * 1e30}, "h has values up to 1e+30"),
    ({"z": Z, "teacher": np.zeros((16, 8), np.float32)}, "teacher must hold probabilities"),
    ({"z": Z, "teacher": np.full((16, 8), 5, np.float32)}, "one sums to 40"),
    (
        {"z": Z, "teacher": _probabilities(16, 8), "student": np.full((16, 8), 0.5, np.float32)},
        "student must hold probabilities",
    ),
    ({"z": Z, "predictor_weight": np.eye(3, dtype=np.float32)}, "expected (d_t, 4)"),
    (
        {"z": Z, "p": np.ones((16, 6)), "predictor_weight": np.ones((4, 4), np.float32)},
        "expected (6, 4)",
    ),
]


@pytest.mark.parametrize(("arrays", "problem"), UNMEASURABLE)
def test_an_epoch_the_diagnostics_could_not_measure_is_refused_at_upload(
    idle: httpx.Client, arrays: dict[str, np.ndarray], problem: str
) -> None:
    run_id = _external_run(idle)
    response = _put(idle, run_id, 0, wire.encode_epoch(0, arrays))
    assert response.status_code == 422, response.text
    assert problem in response.json()["detail"]


def test_a_huge_scale_is_refused_at_upload(idle: httpx.Client) -> None:
    """``scale: 1e38`` decodes to finite float32 values the diagnostics cannot square."""
    run_id = _external_run(idle)
    response = _put(idle, run_id, 0, _mutated(0, {}, {"scale": 1e38}))
    assert response.status_code == 422, response.text
    assert "the diagnostics can square" in response.json()["detail"]


def test_measurable_internals_are_still_taken(idle: httpx.Client) -> None:
    run_id = _external_run(idle)
    teacher = _probabilities(16, 8)
    arrays: dict[str, np.ndarray] = {
        "z": Z * 1e6,  # beyond float16: the projection's copy is scaled into its range
        "p": np.ones((16, 6)),
        "predictor_weight": np.ones((6, 4), np.float32),
        "teacher": teacher,
        "student": _probabilities(16, 8),
    }
    response = _put(idle, run_id, 0, wire.encode_epoch(0, arrays))
    assert response.status_code == 202, response.text


# -- 6. the upload's 415, an external run's probe images ---------------------------------------


def test_an_upload_of_another_type_is_told_the_epoch_media_type(idle: httpx.Client) -> None:
    run_id = _external_run(idle)
    body = wire.encode_epoch(0, {"z": Z})
    for media_type in ("application/octet-stream", "text/plain"):
        response = idle.put(
            f"/api/external-runs/{run_id}/epochs/0",
            content=body,
            headers={"Content-Type": media_type},
        )
        assert response.status_code == 415
        detail = response.json()["detail"]
        assert wire.CONTENT_TYPE in detail and "JSON" not in detail, detail
    response = idle.post("/api/runs", content=b"{}", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and "application/json" in response.json()["detail"]


def test_an_external_run_has_no_probe_images(idle: httpx.Client, idle_stack: ServiceStack) -> None:
    run_id = _external_run(idle)
    response = idle.get(f"/api/runs/{run_id}/probe/0.png")
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert "external run has no probe images" in detail
    assert str(idle_stack.workdir) not in detail and "/" not in detail
    built_in = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    waiting = idle.get(f"/api/runs/{built_in}/probe/0.png")
    assert waiting.status_code == 409 and "/" not in waiting.json()["detail"]  # no path shown


# -- 7. unknown query parameters: a 422 naming them, never an unfiltered answer ----------------


def test_a_blank_name_is_refused_and_spaces_around_one_dropped(idle: httpx.Client) -> None:
    for blank in ("   ", "\n\t"):
        response = idle.post("/api/external-runs", json={"name": blank})
        _refused_at(response, ["body", "name"], "at least 1 character")
    spaced = idle.post("/api/external-runs", json={"name": "  spaced  "})
    assert spaced.status_code == 201, spaced.text
    assert idle.get(f"/api/runs/{spaced.json()['id']}").json()["name"] == "spaced"
    long_id = idle.get(f"/api/runs/{'x' * 5000}")
    assert long_id.status_code == 404 and long_id.json()["detail"] == f"no run '{'x' * 40}…'"


def test_a_misspelt_filter_is_a_422_not_every_run(idle: httpx.Client) -> None:
    run_id = _external_run(idle)
    response = idle.get("/api/runs", params={"stauts": "failed", "limit": 5})
    _refused_at(response, ["query", "stauts"], "unknown query parameter")
    assert "status" in response.json()["detail"][0]["msg"]  # names what the route takes
    # the real filter and a share token (read by every route, declared by none) are taken
    assert idle.get("/api/runs", params={"status": "failed", "share": "x"}).status_code == 200
    _refused_at(idle.get(f"/api/runs/{run_id}", params={"verbose": "1"}), ["query", "verbose"], "")
    # the pages keep their own state in the query: a page is never refused for it
    assert idle.get("/", params={"page": "2", "whatever": "x"}).status_code == 200
