"""Markers the test folders imply: everything under tests/service and tests/browser starts
services (redis-server, uvicorn, Celery workers), so `make check` leaves it out."""

from __future__ import annotations

from pathlib import Path

import pytest

SERVICE_FOLDERS = tuple(Path(__file__).parent / name for name in ("service", "browser"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in SERVICE_FOLDERS):
            item.add_marker(pytest.mark.service)
