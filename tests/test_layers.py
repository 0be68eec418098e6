"""The API process starts without PyTorch: the promise behind an API-only container image.
And the limit the client keeps its own copy of (it imports nothing of the server) is the
server's."""

from __future__ import annotations

import subprocess
import sys

from collapse_lab import wire

from contract.labels import MAX_NAME_CHARS

HEAVY = ("torch", "torchvision", "umap", "sklearn", "workers.engine.trainer", "workers.lifecycle")


def test_importing_the_api_loads_no_torch_and_no_worker_code() -> None:
    probe = (
        "import sys, backend.app; "
        "from backend.routers.methods import catalogue; catalogue(); "
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert loaded == "", f"the API imported {loaded}"


def test_the_client_refuses_the_names_the_server_refuses() -> None:
    assert wire.MAX_NAME == MAX_NAME_CHARS
