"""Webhook URLs of a request (``alerts``): a host on the server's own network is refused
unless ALERT_ALLOW_PRIVATE, and a receiver's reply never reaches ``GET /api/health``."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from backend.alerts import _post, public_error, receiver_label
from backend.settings import Settings
from backend.store.models import AlertDelivery
from backend.validation import receiver_errors
from contract.labels import RunLabels
from tests.service.stack import TINY_RUN, RedisServer, ServiceStack, api_only_stack

INTERNAL = [
    "http://127.0.0.1:6379/x",
    "http://localhost/hook",
    "http://LOCALHOST./hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.1/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://0.0.0.0:8000/",
    "http://[::1]:8000/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://127.1/",
    "http://100.64.0.1/x",  # a carrier's shared address space
]
EXTERNAL = ["https://hooks.example.com/services/T/B/x", "http://93.184.216.34/hook"]


def test_internal_hosts_are_refused_unless_allowed() -> None:
    strict = Settings(_env_file=None, alert_allow_private=False)  # type: ignore[call-arg]
    errors = receiver_errors(INTERNAL + EXTERNAL, strict, ["alerts"])
    assert [e["loc"] for e in errors] == [["alerts", i] for i in range(len(INTERNAL))]
    assert all("ALERT_ALLOW_PRIVATE" in e["msg"] for e in errors)
    allowed = Settings(_env_file=None, alert_allow_private=True)  # type: ignore[call-arg]
    assert receiver_errors(INTERNAL, allowed, ["alerts"]) == []


@pytest.fixture(scope="module")
def strict_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    with api_only_stack(
        redis_server.url.replace("/0", "/8"),
        tmp_path_factory.mktemp("strict-alerts"),
        extra_env={"ALERT_ALLOW_PRIVATE": "false"},
    ) as service:
        yield service


def _refused(response: httpx.Response, loc: list[Any]) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and "ALERT_ALLOW_PRIVATE" in d["msg"] for d in detail), detail


def test_a_request_naming_an_internal_webhook_is_a_422_at_the_field(
    strict_stack: ServiceStack,
) -> None:
    hook = "http://169.254.169.254/latest/meta-data/"
    with httpx.Client(base_url=strict_stack.base_url, timeout=30) as client:
        run = client.post("/api/runs", json={**TINY_RUN, "alerts": [EXTERNAL[0], hook]})
        _refused(run, ["body", TINY_RUN["method"], "alerts", 1])
        external = client.post("/api/external-runs", json={"name": "m", "alerts": [hook]})
        _refused(external, ["body", "alerts", 0])
        sweep = {"base": TINY_RUN, "grid": {"lr": [0.1, 0.2]}, "alerts": [hook]}
        _refused(client.post("/api/sweeps", json=sweep), ["body", "alerts", 0])
        _refused(client.post("/api/sweeps/preview", json=sweep), ["body", "alerts", 0])
        base = {"base": {**TINY_RUN, "alerts": [hook]}, "grid": {"lr": [0.1, 0.2]}}
        at_base = ["body", "base", TINY_RUN["method"], "alerts", 0]
        _refused(client.post("/api/sweeps", json=base), at_base)
        zoo = client.post("/api/zoo", json={"presets": None, "overrides": {"alerts": [hook]}})
        assert zoo.status_code == 422 and "ALERT_ALLOW_PRIVATE" in zoo.text, zoo.text
        assert client.get("/api/runs").json()["count"] == 0
        # a DNS name is trusted (not resolved)
        fine = client.post("/api/external-runs", json={"name": "m", "alerts": EXTERNAL})
        assert fine.status_code == 201, fine.text


class _Secretive(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b"internal secret: root password hunter2"
        self.send_response(403)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def test_a_receivers_reply_body_is_never_kept_in_the_error() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Secretive)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hook"
        delivery = AlertDelivery(id=1, key="k", url=url, body={}, attempts=0, created_at=0.0)
        with httpx.Client(timeout=5) as client:
            failure = _post(client, delivery)
    finally:
        server.shutdown()
    assert failure is not None and not failure.retry
    assert failure.error.startswith("HTTP 403 Forbidden")
    assert "secret" not in failure.error
    # what an earlier release stored is shown by its status only
    assert public_error("HTTP 403: internal secret (refused by the receiver)") == "HTTP 403"
    assert public_error("ConnectError: refused") == "ConnectError: refused"


MALFORMED = {
    "http://[::1": "Invalid IPv6 URL",
    "http://a\u200b.example/": "Invalid IDNA hostname",
    "http://a]/": "Invalid IPv6 URL",
    "http://h:99999/": "Port out of range",
    "ftp://files.example/": "starts with http:// or https://",
    "http:///path": "names no host",
    "http://a b/": "no spaces",
}


@pytest.mark.parametrize(("url", "words"), MALFORMED.items())
def test_a_malformed_webhook_url_is_refused_naming_the_problem(url: str, words: str) -> None:
    with pytest.raises(ValidationError) as refused:
        RunLabels(alerts=["https://hooks.example.com/x", url])
    (error,) = refused.value.errors()
    assert error["loc"] == ("alerts", 1) and words in error["msg"], error
    assert "pattern" not in error["msg"]


def test_a_stored_url_httpx_cannot_post_to_fails_once_and_is_labelled() -> None:
    """Rows from earlier releases (and ALERT_WEBHOOKS) are not checked: the post is given up
    at once, never left claimed, and the receiver's label never raises."""
    for url in MALFORMED:
        assert receiver_label(url).rpartition(" #")[2].isalnum()
    for url in ["http://[::1", "http://a\u200b.example/", "nonsense"]:
        delivery = AlertDelivery(id=1, key="k", url=url, body={}, attempts=0, created_at=0.0)
        with httpx.Client(timeout=1) as client:
            failure = _post(client, delivery)
        assert failure is not None and not failure.retry, (url, failure)
        assert url not in failure.error
