"""A stand-in for the server side of ``client/PROTOCOL.md``, for the client's unit tests and
its benchmark: a threaded ``http.server`` that implements the three external-run calls and
records what it receives.

Its decoder is written from PROTOCOL.md, independently of ``collapse_lab.wire``, so the
tests check the client against the written protocol rather than against itself. Knobs:
``delay_s`` (sleep before each reply), ``token`` (write protection), ``lose_replies``
(process the next n requests, then drop the connection without replying: a reply lost on
the way back), ``accepts`` (None: a server of the first protocol, which does not list the
arrays it reads and refuses any but z, h, views_a, views_b and labels; a list: a server that
reads the method internals and says so in its registration reply), ``stop()``/``start()``
(the API going away and coming back on the same port).
It speaks HTTP/1.1 with keep-alive, as uvicorn does, and ``stop()`` resets the open
connections, so the client's pooled connections die with the server as they would.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import re
import socket
import struct
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np

CONTENT_TYPE = "application/x-collapse-lab-epoch"
EPOCH_PATH = re.compile(r"^/api/external-runs/([0-9a-f]+)/epochs/(\d+)$")
FINISH_PATH = re.compile(r"^/api/external-runs/([0-9a-f]+)/finish$")
FIRST_PROTOCOL_ARRAYS = ("z", "h", "views_a", "views_b", "labels")


def decode(body: bytes) -> dict[str, Any]:
    """PROTOCOL.md, "Epoch message": prefix, JSON header, arrays at their offsets."""
    magic, length = struct.unpack_from("<8sI", body)
    if magic != b"CLEPOCH\x01":
        raise ValueError("bad magic")
    header = json.loads(body[12 : 12 + length])
    arrays = {}
    for name, entry in header["arrays"].items():
        count = int(np.prod(entry["shape"]))
        data = np.frombuffer(body, dtype=entry["dtype"], count=count, offset=entry["offset"])
        data = data.reshape(entry["shape"])
        if entry["dtype"] != "<i4":
            shift = np.asarray(entry.get("shift", 0.0), dtype=np.float32)
            decoded = data.astype(np.float32) * entry.get("scale", 1.0) + shift
            if entry["dtype"] == "<f2":  # the code of 0 in each column decodes to 0
                zero = (-shift / np.float32(entry.get("scale", 1.0))).astype(np.float16)
                decoded[data == zero] = 0.0
            data = decoded
        arrays[name] = data
    return {**header, "arrays": arrays}


@dataclass
class Run:
    id: str
    registration: dict[str, Any]
    headers: dict[str, str]
    epochs: dict[int, dict[str, Any]] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    finish: dict[str, Any] | None = None
    finished_after: list[int] | None = None  # the epochs stored when finish arrived


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection cut under a request (stop(), the outages the tests make) is not an
        error of the server's: socketserver would print its traceback to stderr, at any
        later moment, inside another test's captured output."""
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class FakeCollapseLab:
    def __init__(self, token: str | None = None, max_probe_size: int = 10_000) -> None:
        self.token = token
        self.max_probe_size = max_probe_size
        self.accepts: list[str] | None = None
        self.registration_extra: dict[str, Any] = {}  # fields added to (or over) the reply
        self.run_reply: bytes | None = None  # GET /api/runs/{id}'s body, when set
        self.delay_s = 0.0
        self.lose_replies = 0
        self.runs: dict[str, Run] = {}
        self.by_key: dict[str, str] = {}
        self.by_resume_key: dict[str, str] = {}
        self.log: list[tuple[str, str, int]] = []  # (method, path, status) of every reply
        self.lock = threading.Lock()
        self.connections: set[socket.socket] = set()
        self._server: _Server | None = None
        self.port = 0
        self.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._server = _Server(("127.0.0.1", self.port), _handler(self))
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        with self.lock:
            for connection in self.connections:
                with contextlib.suppress(OSError):  # already closed by the client
                    connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        self._server = None

    def only_run(self) -> Run:
        assert len(self.runs) == 1, f"expected one run, the server has {len(self.runs)}"
        return next(iter(self.runs.values()))

    # ------------------------------------------------------------------ the calls

    def handle(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        if self.token and headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"detail": "this server is write-protected"}
        if method == "POST" and path == "/api/external-runs":
            return self._register(json.loads(body), headers)
        if method == "PUT" and (match := EPOCH_PATH.match(path)):
            return self._epoch(match[1], int(match[2]), headers, body)
        if method == "POST" and (match := FINISH_PATH.match(path)):
            return self._finish(match[1], json.loads(body))
        if method == "GET" and path.startswith("/api/runs/") and self.run_reply is not None:
            return 200, self.run_reply
        return 404, {"detail": "not found"}

    def _register(self, payload: dict[str, Any], headers: Any) -> tuple[int, Any]:
        key = headers.get("Idempotency-Key")
        resume_key = payload.get("resume_key")
        resumed = resume_key in self.by_resume_key
        if resumed:  # the run goes on, reopened if its monitor had finished it
            status, run = 200, self.runs[self.by_resume_key[resume_key]]
            run.finish = None
        elif key in self.by_key:
            status, run = 200, self.runs[self.by_key[key]]
        else:
            status = 201
            run = Run(uuid.uuid4().hex[:12], payload, dict(headers))
            self.runs[run.id] = run
            if key:
                self.by_key[key] = run.id
            if resume_key:
                self.by_resume_key[resume_key] = run.id
        limits = {"max_probe_size": self.max_probe_size, "max_epoch_bytes": 64 * 2**20}
        reply = {"id": run.id, "url": f"/runs/{run.id}", "limits": limits, "resumed": resumed}
        if resumed:
            reply["last_epoch"] = max(run.epochs, default=None)
        if self.accepts is not None:
            reply["accepts"] = self.accepts
        return status, {**reply, **self.registration_extra}

    def _epoch(self, run_id: str, epoch: int, headers: Any, body: bytes) -> tuple[int, Any]:
        run = self.runs.get(run_id)
        if run is None:
            return 404, {"detail": f"no run {run_id!r}"}
        if headers.get("Content-Type") != CONTENT_TYPE:
            return 415, {"detail": f"Content-Type must be {CONTENT_TYPE}"}
        digest = hashlib.sha256(body).hexdigest()
        if epoch in run.digests:
            if run.digests[epoch] == digest:
                return 200, {"epoch": epoch, "status": "duplicate"}
            return 409, {"detail": f"epoch {epoch} differs", "code": "epoch_conflict"}
        if run.finish is not None:
            return 409, {"detail": "the run is finished", "code": "run_closed"}
        try:
            message = decode(body)
        except (ValueError, KeyError, TypeError, struct.error) as error:
            return 422, {"detail": f"malformed epoch message: {error}"}
        if message["epoch"] != epoch:
            return 422, {"detail": "the header's epoch differs from the path's"}
        unknown = set(message["arrays"]) - set(self.accepts or FIRST_PROTOCOL_ARRAYS)
        if unknown:
            return 422, {"detail": f"malformed epoch message: unknown arrays {sorted(unknown)}"}
        run.epochs[epoch], run.digests[epoch] = message, digest
        return 202, {"epoch": epoch, "status": "accepted"}

    def _finish(self, run_id: str, payload: dict[str, Any]) -> tuple[int, Any]:
        run = self.runs.get(run_id)
        if run is None:
            return 404, {"detail": f"no run {run_id!r}"}
        if run.finish is None:
            run.finish, run.finished_after = payload, sorted(run.epochs)
        return 202, {"id": run.id, "status": run.finish["status"]}


def _handler(server: FakeCollapseLab) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            with server.lock:
                server.connections.add(self.connection)

        def finish(self) -> None:
            with server.lock:
                server.connections.discard(self.connection)
            super().finish()

        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if server.delay_s:
                time.sleep(server.delay_s)
            with server.lock:
                status, payload = server.handle(self.command, self.path, self.headers, body)
                lose = server.lose_replies > 0
                server.lose_replies -= lose
                server.log.append((self.command, self.path, -1 if lose else status))
            if lose:  # processed, but the client never hears back
                self.close_connection = True
                return
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_POST = do_PUT = _serve

        def do_GET(self) -> None:
            if server.run_reply is None:  # no run endpoint: the monitor gets no verdict
                self.send_error(501)
            else:
                self._serve()

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    return Handler


def main() -> None:
    """Serve on a free port (for the benchmark: its own process, as a real server is)."""
    parser = argparse.ArgumentParser(description="stand-in Collapse Lab external-run server")
    parser.add_argument("--delay-s", type=float, default=0.0)
    args = parser.parse_args()
    server = FakeCollapseLab()
    server.delay_s = args.delay_s
    print(server.url, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
