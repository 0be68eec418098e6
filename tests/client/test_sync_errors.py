"""``python -m collapse_lab sync`` on bad input and unhelpful servers: one clear line each,
never a traceback, and nothing it could sync left unsynced."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import collapse_lab
import numpy as np
import pytest
from collapse_lab import Monitor, local
from collapse_lab import sync as sync_module
from collapse_lab.sync import main

from tests.client.fake_server import FakeCollapseLab


class Canned:
    """An HTTP server that answers every request with one status and body (a proxy's error
    page, a web server that is not Collapse Lab), counting the requests."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/html") -> None:
        self.requests = 0
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                canned.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


BAR = re.compile(r"\[[#-]+\] \d+/\d+ epochs")  # a run's progress bar
HTML = b"<html>\n<head><title>Welcome</title></head>\n<body>\n<h1>It works</h1>\n</body>\n</html>\n"


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A folder of three finished offline runs."""
    root = tmp_path / "runs"
    for name in ("a", "b", "c"):
        monitor = Monitor(name=name, offline=True, run_dir=root, resume=False)
        monitor.log_epoch(0, np.random.default_rng(0).standard_normal((16, 4)))
        assert monitor.finish(timeout=10)
    return root


def _errors(capsys: pytest.CaptureFixture[str]) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if not BAR.search(line)]


@pytest.fixture
def canned() -> Iterator[list[Canned]]:
    servers: list[Canned] = []
    yield servers
    for server in servers:
        server.close()


@pytest.mark.parametrize(
    ("status", "body", "content_type", "says"),
    [
        (200, HTML, "text/html", "answered the registration without a run id (HTTP 200: <html>"),
        (200, b"{}", "application/json", "answered the registration without a run id"),
        (201, b'{"id": null}', "application/json", "without a run id"),
        (501, HTML, "text/html", "the server refused the run (HTTP 501: <html> <head>"),
        (404, b'{"detail": "Not Found"}', "application/json", "a Collapse Lab server with"),
    ],
)
def test_a_server_that_is_not_collapse_lab_gets_one_line_per_run(
    status: int,
    body: bytes,
    content_type: str,
    says: str,
    runs: Path,
    canned: list[Canned],
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = Canned(status, body, content_type)
    canned.append(server)
    assert main(["sync", str(runs), server.url]) == 1
    lines = _errors(capsys)
    assert len(lines) == 3, lines  # one per run, the HTML page on it
    assert all(says in line for line in lines), lines


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["runs", "http://[::1"], "the server's URL: 'http://[::1' is not a valid URL"),
        (["runs", "http://"], "is not an http:// or https:// address with a host"),
        (["runs", "http://127.0.0.1:abc"], "'http://127.0.0.1:abc' is not a valid URL"),
        (["runs", "ftp://lab:21"], "is not an http:// or https:// address with a host"),
        (
            ["runs", "localhost:18731"],
            "'localhost:18731' must start with http:// or https:// (http://localhost:18731?)",
        ),
        (["runs", "lab.example.org:443/collapse"], "must start with http:// or https://"),
        (["runs", "http://lab:8000/#runs"], "has a query or a fragment: give the server's"),
        (["--poll", "-1", "runs", "http://x"], "--poll: must be a number of seconds, above 0"),
        (["--poll", "nan", "runs", "http://x"], "--poll: must be a number of seconds, above 0"),
        (["--poll", "0", "runs", "http://x"], "--poll: must be a number of seconds, above 0"),
        (["--idle-timeout", "inf", "runs", "http://x"], "--idle-timeout: must be a number"),
        (["--idle-timeout", "-5", "runs", "http://x"], "0 or more, not '-5'"),
        (["runs"], "give the server's URL after the directories"),
        (["runs", "notaurl"], "'notaurl' is neither a directory nor a server's URL"),
        (["runs", "http://a:1", "http://b:2"], "'http://a:1' is a URL among the directories"),
    ],
)
def test_a_usage_error_is_one_line_and_exit_status_2(
    args: list[str], says: str, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    monkeypatch.delenv("COLLAPSE_LAB_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["sync", *args])
    assert exited.value.code == 2
    *usage, error = capsys.readouterr().err.splitlines()  # argparse's usage, then why
    assert usage[0].startswith("usage: python -m collapse_lab sync"), usage
    assert error.startswith("python -m collapse_lab sync: error: ") and says in error, error


def test_an_address_without_its_scheme_is_a_usage_error_with_a_url_set(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``sync DIR localhost:18731`` with $COLLAPSE_LAB_URL set synced to that URL and named
    the address a missing directory (exit 1)."""
    monkeypatch.setenv("COLLAPSE_LAB_URL", "http://127.0.0.1:9")
    with pytest.raises(SystemExit) as exited:
        main(["sync", "runs", "localhost:18731"])
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert "'localhost:18731' must start with http:// or https://" in error, error


def test_a_directory_named_like_an_address_is_synced(
    runs: Path, server: FakeCollapseLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run folder whose name has a colon is a directory while it exists, not an address."""
    monkeypatch.chdir(runs.parent)
    runs.rename("lab:2")
    monkeypatch.setenv("COLLAPSE_LAB_URL", server.url)
    assert main(["sync", "lab:2"]) == 0
    assert len(server.runs) == 3


@pytest.mark.parametrize("token", ["ünï", "secret\n", "secret "])
def test_a_token_that_cannot_be_sent_is_a_usage_error_that_does_not_show_it(
    token: str, runs: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A non-ASCII token raised UnicodeEncodeError (a traceback); one with a newline or a
    space at its end failed every request as if the server were down."""
    monkeypatch.setenv("COLLAPSE_LAB_TOKEN", token)
    with pytest.raises(SystemExit) as exited:
        main(["sync", str(runs), "http://127.0.0.1:9"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    error = err.splitlines()[-1]
    assert error.startswith("python -m collapse_lab sync: error: the API token must be "), error
    assert "printable ASCII" in error and token.strip() not in err


def test_options_may_follow_the_directories(
    runs: Path, server: FakeCollapseLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """``sync DIR --follow URL``: argparse's plain parse refused the URL after the option."""
    started = time.monotonic()
    code = main(
        ["sync", str(runs), "--follow", "--poll", "0.05", "--idle-timeout", "0.5", server.url]
    )
    assert code == 0, capsys.readouterr().err
    assert time.monotonic() - started < 30
    assert len(server.runs) == 3 and all(run.finish is not None for run in server.runs.values())


def test_an_unreachable_server_is_tried_once_not_once_per_directory(
    runs: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sync_module, "ATTEMPTS", 3)  # 0.5 + 1 + 2 s of retries
    with socket.socket() as closed:  # a port nothing listens on: connection refused
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    started = time.monotonic()
    assert main(["sync", str(runs), url]) == 1
    took = time.monotonic() - started
    lines = _errors(capsys)
    # said as the retries start, not only a minute later when they end
    assert lines[0].endswith("trying again for about a minute"), lines
    assert [line.count("cannot reach") for line in lines] == [1, 1, 0], lines
    assert lines[2].startswith(f"2 more run directories not synced: {url} did not answer")
    assert took < 3.5 * 2, took  # one directory's retries (3.5 s), not three


def test_a_server_that_answers_503_is_not_called_unreachable(
    runs: Path,
    canned: list[Canned],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A proxy in front of a restarting server answers 503: the server was reached and
    said it cannot serve now; "cannot reach" would send the researcher to check the URL."""
    monkeypatch.setattr(sync_module, "ATTEMPTS", 2)
    server = Canned(503, b"upstream restarting", "text/plain")
    canned.append(server)
    assert main(["sync", str(runs), server.url]) == 1
    lines = _errors(capsys)
    says = f"{server.url} cannot serve requests now (HTTP 503)"
    assert says in lines[0] and says in lines[1], lines
    assert not any("cannot reach" in line or "unreachable" in line for line in lines), lines
    assert lines[-1].startswith("2 more run directories not synced: "), lines
    assert server.requests == 2  # retried, then given up: one directory's attempts


def test_a_run_directory_without_run_json_is_named(
    runs: Path, server: FakeCollapseLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """A run directory copied without its run.json cannot be synced: named, the others
    synced."""
    orphan = next(runs.iterdir())
    (orphan / local.RUN_FILE).unlink()
    assert main(["sync", str(runs), server.url]) == 1
    assert _errors(capsys) == [
        f"{orphan}: not a Collapse Lab run directory (an epochs folder but no run.json: "
        "copied without it?); not synced"
    ]
    assert len(server.runs) == 2


def test_what_is_no_run_directory_is_named_for_what_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    run = tmp_path / "a-run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    photo = tmp_path / "photo.png"
    photo.write_bytes(b"not a run")
    paths = [empty, run / "run.json", photo]
    assert main(["sync", *map(str, paths), "http://127.0.0.1:9"]) == 1
    err = capsys.readouterr().err
    assert f"{empty}: not a Collapse Lab run directory (no run.json), nor a folder of them" in err
    assert f"{run / 'run.json'}: a run's run.json: give its directory, {run}" in err
    assert f"{photo}: a file, not a Collapse Lab run directory" in err


def test_the_version_is_printed_and_a_missing_command_named(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"python -m collapse_lab {collapse_lab.__version__}"
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith("required: COMMAND")
