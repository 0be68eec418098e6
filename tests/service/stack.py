"""Real processes for the service tests: redis-server, Celery workers and uvicorn.

Nothing is mocked: the tests talk HTTP to a uvicorn subprocess, which talks to a
redis-server subprocess and a SQLite file (or PostgreSQL), while Celery worker subprocesses
train tiny runs with the real engine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from backend.deployment import RedisNames
from backend.store.database import Database
from workers.launcher import free_local_port as free_port
from workers.launcher import worker_command

REPO = Path(__file__).resolve().parents[2]

# Tiny runs: a few seconds per epoch on one CPU thread.
TINY_RUN: dict[str, Any] = {
    "method": "simsiam",
    "dataset": "digits",
    "epochs": 3,
    "batch_size": 32,
    "train_size": 256,
    "probe_size": 128,
    "image_size": 16,
    "width": 8,
    "proj_hidden_dim": 64,
    "proj_dim": 32,
    "pred_hidden_dim": 16,
}

FAST_TIMEOUTS = {
    "HEARTBEAT_INTERVAL_S": "0.5",
    "HEARTBEAT_TIMEOUT_S": "5",
    "REAPER_INTERVAL_S": "1",
    "SSE_KEEPALIVE_S": "2",
    "PROGRESS_INTERVAL_S": "0.2",
    "MAX_WORKER_LOSSES": "3",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "NUMBA_NUM_THREADS": "1",
}


def wait_until(predicate: Any, timeout: float, interval: float = 0.2, what: str = "") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (httpx.HTTPError, OSError) as exc:
            last_error = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout} s waiting for {what} ({last_error})")


class RedisServer:
    """A private redis-server on a free port, restartable on the same port; with
    ``persistent=False`` a restart loses everything (no append-only file)."""

    def __init__(self, workdir: Path, persistent: bool = True) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.persistent = persistent
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes" if self.persistent else "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=(self.workdir / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 10, what="redis-server")

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


class PostgresServer:
    """A private PostgreSQL cluster (initdb, trust auth) on a free port, restartable on the same
    port, for tests that stop the database (the shared server on 5432 must stay up).

    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` user, in a folder
    of its own under the system temp dir (pytest's folders are private to root)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="collapse-lab-pg-"))
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.workdir, "postgres")
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self.running = False

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *command: str) -> None:
        subprocess.run([*self._as_user, *command], check=True, capture_output=True, timeout=60)

    def _pg_ctl(self, *args: str) -> None:
        data, log = str(self.workdir / "data"), str(self.workdir / "postgres.log")
        self._run("pg_ctl", "-D", data, "-l", log, "-w", *args)

    def init(self) -> None:
        self._run(
            "initdb",
            "-D",
            str(self.workdir / "data"),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",
        )

    def start(self) -> None:
        # fsync off: nothing here outlives the test, and a fast shutdown writes everything anyway
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=off"
        self._pg_ctl("-o", options, "start")
        self.running = True

    def stop(self) -> None:
        """A fast shutdown: open sessions are cut off, as when an operator restarts it."""
        if self.running:
            self._pg_ctl("-m", "fast", "stop")
        self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@dataclass
class ServiceStack:
    """API + workers sharing one Redis and one database, all as subprocesses."""

    workdir: Path
    redis_url: str
    database_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    api: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def redis_names(self) -> RedisNames:
        """The deployment's keys in Redis (its id is in its database, once the API started)."""
        database = Database(self.database_url)
        try:
            return RedisNames.of(database)
        finally:
            database.dispose()

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            **FAST_TIMEOUTS,
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "DATA_DIR": str(self.data_dir),
            "PYTHONUNBUFFERED": "1",
            # the tests' webhook receivers listen on loopback
            "ALERT_ALLOW_PRIVATE": "true",
            **self.extra_env,
        }
        for name in ("API_TOKEN", "PRIVATE"):
            if name not in self.extra_env:
                env.pop(name, None)
        return env

    def _log(self, name: str) -> Any:
        self.workdir.mkdir(parents=True, exist_ok=True)
        return (self.workdir / f"{name}.log").open("ab")

    def start_api(self) -> None:
        self.api = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "backend.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.api_port),
                "--log-level",
                "warning",
            ],
            cwd=REPO,
            env=self.env(),
            stdout=self._log("api"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._api_up, 60, what="the API")

    def _api_up(self) -> bool:
        assert self.api is not None
        if self.api.poll() is not None:
            raise RuntimeError(f"the API exited: see {self.workdir / 'api.log'}")
        return httpx.get(f"{self.base_url}/api/health", timeout=2).status_code == 200

    def stop_api(self) -> None:
        if self.api is not None and self.api.poll() is None:
            self.api.terminate()
            try:
                self.api.wait(15)
            except subprocess.TimeoutExpired:
                self.api.kill()
                self.api.wait(5)
        self.api = None

    def start_worker(
        self, name: str, queue: str = "train", env: dict[str, str] | None = None
    ) -> subprocess.Popen[bytes]:
        """A Celery worker on ``queue``, its log in ``worker-{name}.log``; ``env`` adds to the
        stack's environment."""
        process = subprocess.Popen(
            worker_command(queue, name),
            cwd=REPO,
            env={**self.env(), **(env or {})},
            stdout=self._log(f"worker-{name}"),
            stderr=subprocess.STDOUT,
        )
        self.workers[name] = process
        return process

    def wait_for_workers(self, train: int = 1, timeout: float = 180) -> None:
        def ready() -> bool:
            health = httpx.get(f"{self.base_url}/api/health", timeout=5).json()
            workers: dict[str, int] = health["workers"]
            return workers["train"] >= train

        wait_until(ready, timeout, what=f"{train} train worker(s)")

    def kill_worker(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.workers.pop(name)
        process.send_signal(sig)
        process.wait(30)

    def kill_training_workers(self, sig: int = signal.SIGKILL) -> None:
        """Every training worker: SIGKILL (no clean-up, no acknowledgement, as the OOM killer
        does) or SIGTERM (a warm shutdown, as on Ctrl-C)."""
        for name in [n for n in self.workers if n.startswith("train")]:
            self.kill_worker(name, sig)

    def stop(self) -> None:
        self.stop_api()
        processes = list(self.workers.values())
        self.workers.clear()
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + 20
        for process in processes:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@dataclass
class SseEvent:
    id: int | None
    event: str
    data: Any


def iter_sse(
    client: httpx.Client,
    url: str,
    *,
    last_event_id: int | None = None,
    timeout: float = 120,
    headers: dict[str, str] | None = None,
) -> Iterator[SseEvent | str]:
    """Parse a text/event-stream: yields SseEvent for events and the comment text (str) for
    comment lines such as keep-alives."""
    request_headers = dict(headers or {})
    if last_event_id is not None:
        request_headers["Last-Event-ID"] = str(last_event_id)
    with client.stream(
        "GET", url, headers=request_headers, timeout=httpx.Timeout(timeout, connect=5)
    ) as response:
        response.raise_for_status()
        assert response.headers["content-type"].startswith("text/event-stream")
        fields: dict[str, str] = {}
        for line in response.iter_lines():
            if line.startswith(":"):
                yield line[1:].strip()
                continue
            if line == "":
                if "data" in fields:
                    yield SseEvent(
                        int(fields["id"]) if "id" in fields else None,
                        fields.get("event", "message"),
                        json.loads(fields["data"]),
                    )
                fields = {}
                continue
            name, _, value = line.partition(":")
            fields[name] = value[1:] if value.startswith(" ") else value


def collect_until(
    client: httpx.Client,
    url: str,
    *,
    stop: Any,
    last_event_id: int | None = None,
    timeout: float = 180,
    include_progress: bool = False,
) -> list[SseEvent]:
    """Read events until ``stop(event)`` is true; returns the events (with the last one)."""
    events: list[SseEvent] = []
    deadline = time.monotonic() + timeout
    for item in iter_sse(client, url, last_event_id=last_event_id, timeout=timeout):
        if time.monotonic() > deadline:
            raise TimeoutError(f"stream did not finish in {timeout} s; got {len(events)}")
        if isinstance(item, str):
            continue
        if item.event == "progress" and not include_progress:
            continue
        events.append(item)
        if stop(item):
            return events
    raise AssertionError(f"stream closed early after {len(events)} events")


def is_terminal_status(event: SseEvent) -> bool:
    return event.event == "status" and event.data["status"] in (
        "succeeded",
        "failed",
        "cancelled",
    )


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc's parent ids)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


@contextmanager
def api_only_stack(
    redis_url: str, workdir: Path, extra_env: dict[str, str] | None = None
) -> Iterator[ServiceStack]:
    """An open API without workers on its own SQLite file (tests add workers themselves);
    ``extra_env`` adds to its environment."""
    service = ServiceStack(
        workdir=workdir,
        redis_url=redis_url,
        database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
        extra_env=extra_env or {},
    )
    service.start_api()
    try:
        yield service
    finally:
        service.stop()
