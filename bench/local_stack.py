"""A throwaway service stack for the benchmarks that need one."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.service.stack import RedisServer, ServiceStack


@contextmanager
def local_stack(
    *, workers: bool, extra_env: dict[str, str] | None = None, ingest_worker: bool = True
) -> Iterator[ServiceStack]:
    """Its own redis-server and uvicorn API on a SQLite file in a temporary folder (the
    stack's ``workdir``) and, with ``workers``, one train, one projection and one ingest
    worker, as ``collapse-lab up`` starts them (``ingest_worker=False``: the projection worker
    takes the uploads alone, as before 2026-12-06); all stopped and removed on exit."""
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        stack = None
        redis_server = RedisServer(workdir / "redis")
        try:
            redis_server.start()
            database_url = f"sqlite:///{workdir / 'bench.db'}"
            stack = ServiceStack(workdir, redis_server.url, database_url, extra_env=extra_env or {})
            stack.start_api()
            if workers:
                stack.start_worker("bench-train", "train")
                stack.start_worker("bench-projection", "projection")
                if ingest_worker:
                    stack.start_worker("bench-ingest", "ingest")
                stack.wait_for_workers(train=1)
            yield stack
        finally:
            if stack is not None:
                stack.stop()
            redis_server.stop()
