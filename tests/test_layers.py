"""The API process starts without PyTorch: the promise behind an API-only container image."""

from __future__ import annotations

import subprocess
import sys

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
