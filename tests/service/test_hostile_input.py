"""Hostile requests against the real API: odd paths, lax types, unbounded lists, huge bodies,
bodies that are not JSON; what private mode shows to strangers; and that the cached run list
never hides a change made through this API."""

from __future__ import annotations

import json
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from backend.routers.runs import MAX_ZOO_PRESETS
from tests.service.stack import TINY_RUN, ServiceStack


@pytest.fixture
def idle(idle_stack: ServiceStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        yield client


def _count(client: httpx.Client) -> int:
    return client.get("/api/runs").json()["count"]


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("imgs\u0000x", "NUL"),
        ("a" * 5000, "characters long"),
        (".", "root"),
        ("runs", "runs"),
        ("runs/../runs", ".."),
    ],
)
def test_dataset_paths_that_are_no_image_folder_get_a_422(
    idle: httpx.Client, path: str, message: str
) -> None:
    before = _count(idle)
    body = {"method": "simsiam", "dataset": "imagefolder", "dataset_path": path}
    response = idle.post("/api/runs", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    # a NUL is refused before the route (backend/body_limits.py), without the method's tag
    loc = ["body", "dataset_path"] if message == "NUL" else ["body", "simsiam", "dataset_path"]
    assert any(d["loc"] == loc and message in d["msg"] for d in detail), detail
    assert all("type" in d for d in detail), detail
    assert _count(idle) == before


def test_a_dataset_path_error_never_shows_the_data_directorys_path(
    idle_stack: ServiceStack, idle: httpx.Client, tmp_path: Path
) -> None:
    idle_stack.data_dir.mkdir(parents=True, exist_ok=True)
    link = idle_stack.data_dir / "sneaky-link"
    if not link.is_symlink():
        link.symlink_to(tmp_path)
    loop = idle_stack.data_dir / "loop-link"
    if not loop.is_symlink():
        loop.symlink_to(loop)
    root = str(idle_stack.data_dir.resolve())
    for path, message in (
        ("sneaky-link", "leads outside the data directory"),
        ("loop-link", "cannot be resolved"),
        ("/etc", "relative to the data directory"),
        (".", "inside the data directory, not its root"),
    ):
        body = {"method": "simsiam", "dataset": "imagefolder", "dataset_path": path}
        response = idle.post("/api/runs", json=body)
        assert response.status_code == 422, response.text
        assert message in response.text and root not in response.text, response.text


STRICT: list[tuple[dict[str, Any], list[Any], str]] = [
    ({"epochs": True}, ["body", "simsiam", "epochs"], "valid integer"),
    ({"epochs": "3"}, ["body", "simsiam", "epochs"], "valid integer"),
    (
        {"options": {"stop_gradient": "yes"}},
        ["body", "simsiam", "options", "stop_gradient"],
        "boolean",
    ),
    ({"options": {"stop_gradient": 1}}, ["body", "simsiam", "options", "stop_gradient"], "boolean"),
    ({"lr": float("nan")}, ["body", "simsiam", "lr"], "finite number"),
    ({"lr": float("inf")}, ["body", "simsiam", "lr"], "finite number"),
]


@pytest.mark.parametrize(("fields", "loc", "message"), STRICT)
def test_values_of_the_wrong_type_are_not_coerced(
    idle: httpx.Client, fields: dict[str, Any], loc: list[Any], message: str
) -> None:
    body = json.dumps({**TINY_RUN, **fields})  # Python's json writes NaN and Infinity
    response = idle.post("/api/runs", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and message in d["msg"] for d in detail), detail


def test_an_int_is_still_a_float(idle: httpx.Client) -> None:
    response = idle.post("/api/runs", json={**TINY_RUN, "lr": 1})
    assert response.status_code == 201, response.text
    assert response.json()["config"]["lr"] == 1.0


def test_the_zoo_takes_a_bounded_list(idle: httpx.Client) -> None:
    before = _count(idle)
    response = idle.post("/api/zoo", json={"presets": ["simclr"] * (MAX_ZOO_PRESETS + 1)})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "presets"]
    assert _count(idle) == before


def test_a_huge_body_is_refused_before_parsing_and_stalls_nobody(idle: httpx.Client) -> None:
    body = b"[" + b"1," * 5_000_000 + b"1]"  # 10 MB
    health_times: list[float] = []

    def poll_health() -> None:
        with httpx.Client(base_url=str(idle.base_url), timeout=30) as other:
            for _ in range(5):
                started = time.monotonic()
                other.get("/api/health")
                health_times.append(time.monotonic() - started)

    poller = threading.Thread(target=poll_health)
    started = time.monotonic()
    poller.start()
    try:
        response = idle.post(
            "/api/runs", content=body, headers={"content-type": "application/json"}
        )
    except httpx.HTTPError:  # the server may close before the upload ends: also a refusal
        response = None
    elapsed = time.monotonic() - started
    poller.join()
    if response is not None:
        assert response.status_code == 413, response.text[:200]
        assert "limit of 1048576 bytes" in response.json()["detail"]
        assert len(response.content) < 1000
    assert elapsed < 5, f"refusing 10 MB took {elapsed:.1f} s"
    assert max(health_times) < 2, health_times


def test_a_chunked_body_over_the_limit_gets_413(idle: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(2000):
            yield b"1," * 1000
        yield b"1]"

    response = idle.post(
        "/api/runs", content=chunks(), headers={"content-type": "application/json"}
    )
    assert response.status_code == 413


def test_a_422_does_not_echo_a_large_input(idle: httpx.Client) -> None:
    big = {"runs": ["x" * 100] * 5000}  # 0.5 MB, under the body limit, over the list bound
    response = idle.post("/api/shares", json=big)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "runs"]
    assert len(response.content) < 2000, len(response.content)
    small = idle.post("/api/shares", json={"runs": "abc"})
    assert small.json()["detail"][0]["input"] == "abc"  # short ones still help


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_gets_415(
    idle: httpx.Client, content_type: str | None
) -> None:
    before = _count(idle)
    headers = {"content-type": content_type} if content_type else {}
    request = idle.build_request("POST", "/api/runs", content=json.dumps(TINY_RUN).encode())
    request.headers.pop("content-type", None)
    request.headers.update(headers)
    response = idle.send(request)
    assert response.status_code == 415, response.text
    assert _count(idle) == before


def test_private_health_shows_workers_to_the_token_only(private_stack: ServiceStack) -> None:
    client = redis.Redis.from_url(private_stack.redis_url)
    key = private_stack.redis_names().worker_key("secret-host:4242")
    info = {"id": "secret-host:4242", "queues": ["train"], "pid": 4242, "started_at": 0}
    client.set(key, json.dumps(info), ex=30)
    try:
        with httpx.Client(base_url=private_stack.base_url, timeout=30) as http:
            stranger = http.get("/api/health").json()
            owner = http.get("/api/health", headers={"Authorization": "Bearer s3cret-token"})
    finally:
        client.delete(key)
        client.close()
    assert stranger["workers"]["items"] == []
    assert "secret-host" not in json.dumps(stranger)
    assert [w["id"] for w in owner.json()["workers"]["items"]] == ["secret-host:4242"]


def test_the_cached_run_list_shows_a_change_at_once(idle: httpx.Client) -> None:
    for _ in range(3):  # warm the cache
        idle.get("/api/runs")
    run_id = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    assert idle.get("/api/runs").json()["data"][0]["id"] == run_id
    idle.post(f"/api/runs/{run_id}/cancel")
    assert idle.get("/api/runs").json()["data"][0]["status"] == "cancelled"
    assert idle.delete(f"/api/runs/{run_id}").status_code == 204
    assert all(r["id"] != run_id for r in idle.get("/api/runs").json()["data"])


OVERSIZED = 20 * 2**20  # far more than the kernel's socket buffers take without being read


def _urllib_status(url: str, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as refused:
        return refused.code


def _curl_status(url: str, body_file: Path, *headers: str) -> str:
    arguments = [arg for header in headers for arg in ("-H", header)]
    command = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "30"]
    result = subprocess.run(
        [*command, *arguments, "--data-binary", f"@{body_file}", url],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout


def test_every_common_client_reads_the_413_of_an_oversized_body(
    idle_stack: ServiceStack, tmp_path: Path
) -> None:
    """The server reads and throws away the rest of a refused body before it closes, so a
    client that sends it all before reading (urllib) sees the 413, not a broken pipe."""
    url = f"{idle_stack.base_url}/api/runs"
    body = b"[" + b"1," * (OVERSIZED // 2) + b"1]"
    json_type = {"Content-Type": "application/json"}
    assert _urllib_status(url, body, json_type) == 413
    with httpx.Client(timeout=30) as client:
        assert client.post(url, content=body, headers=json_type).status_code == 413
        chunked = client.post(url, content=iter([body[: 2**20]] * 20), headers=json_type)
        assert chunked.status_code == 413
    body_file = tmp_path / "body.json"
    body_file.write_bytes(body)
    assert _curl_status(url, body_file, "Content-Type: application/json") == "413"
    # without "Expect: 100-continue" curl sends the whole body before it reads the answer
    no_expect = _curl_status(url, body_file, "Content-Type: application/json", "Expect:")
    assert no_expect == "413"
    chunked_curl = _curl_status(
        url, body_file, "Content-Type: application/json", "Transfer-Encoding: chunked", "Expect:"
    )
    assert chunked_curl == "413"
    assert httpx.get(f"{idle_stack.base_url}/api/health", timeout=10).status_code == 200


@pytest.mark.parametrize(
    ("config", "where"),
    [
        ('{"lr": NaN}', "config.lr is nan"),
        ('{"sched": {"warmup": [0.1, Infinity]}}', "config.sched.warmup[1] is inf"),
        ('{"floor": -Infinity}', "config.floor is -inf"),
        ('{"d": ' + "[" * 300 + "]" * 300 + "}", "nest at most 64 levels"),
    ],
)
def test_nan_or_infinity_in_an_external_runs_config_is_a_422(
    idle: httpx.Client, config: str, where: str
) -> None:
    """Free-form JSON cannot hold them (they would be stored as null): refused as a run
    request's numbers are."""
    body = '{"name": "nan-config", "config": ' + config + "}"
    headers = {"content-type": "application/json"}
    response = idle.post("/api/external-runs", content=body, headers=headers)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == ["body", "config"] and where in d["msg"] for d in detail), detail


def test_a_nul_in_a_stored_string_or_a_search_is_a_422_and_nothing_is_stored(
    idle: httpx.Client,
) -> None:
    """PostgreSQL cannot store NUL (its driver raised: a 500), SQLite stored it, and a search
    for it matched every run: refused by name, whatever the database."""
    before = _count(idle)
    headers = {"content-type": "application/json"}
    for body, loc in (
        ('{"method": "simsiam", "epochs": 1, "note": "a\\u0000b"}', ["body", "note"]),
        ('{"name": "x\\u0000y"}', ["body", "name"]),
        ('{"name": "ok", "config": {"k": "v\\u0000"}}', ["body", "config", "k"]),
    ):
        path = "/api/runs" if "method" in body else "/api/external-runs"
        response = idle.post(path, content=body, headers=headers)
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == loc
    search = idle.get("/api/runs", params={"q": "\x00"})
    assert search.status_code == 422 and search.json()["detail"][0]["loc"] == ["query", "q"]
    assert _count(idle) == before


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"method": "simsiam", "note": "caf\xe9"}', "not valid UTF-8 (byte 34)"),
        (b'{"method": "simsiam", "note": "\xff\xfe"}', "not valid UTF-8"),
        (b'{"name": "x", "config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deep"),
        (b'{"name": "x", "config": ' + b'{"a":' * 50_000 + b"1" + b"}" * 50_001, "nested too deep"),
    ],
)
def test_a_body_not_utf8_or_nested_too_deep_is_a_422_naming_it(
    idle: httpx.Client, body: bytes, words: str
) -> None:
    path = "/api/runs" if b"method" in body[:20] else "/api/external-runs"
    before = _count(idle)
    response = idle.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body"] and words in error["msg"], error
    assert _count(idle) == before
    # other HTTP errors keep FastAPI's answer
    assert idle.get("/api/runs/nope").status_code == 404
