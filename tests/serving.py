"""An ASGI app under a real uvicorn server in a thread, for the tests that need one without
the whole service (starlette's TestClient is deprecated with httpx, and never sends a chunked
body)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from workers.launcher import free_local_port


@contextmanager
def serving(app: Any) -> Iterator[str]:
    """Serve `app` on a free loopback port, its lifespan run; yields the base URL."""
    port = free_local_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
