"""Markers the test folders imply, and the order the test files run in.

Everything under tests/service and tests/browser starts services (redis-server, uvicorn,
Celery workers), so `make check` leaves it out.

`make test` hands whole files to two pytest-xdist processes in the order collected here
(`--dist loadfile --no-loadscope-reorder`; xdist's own order, by test count, started the
four tests of tests/test_collapse_runs.py, minutes of training, while the other process had
little left). The files therefore run longest first, as estimated from their tests' markers,
and the many quick files fill in at the end."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

SERVICE_FOLDERS = tuple(Path(__file__).parent / name for name in ("service", "browser"))
# rough seconds per test as `pytest --durations=0` measured them here: trains for real,
# starts or drives services, neither
SLOW_S, SERVICE_S, QUICK_S = 20.0, 1.0, 0.1


def estimated_seconds(item: pytest.Item) -> float:
    if item.get_closest_marker("slow"):
        return SLOW_S
    if item.get_closest_marker("service"):
        return SERVICE_S
    return QUICK_S


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in SERVICE_FOLDERS):
            item.add_marker(pytest.mark.service)
    per_file: defaultdict[Path, float] = defaultdict(float)
    for item in items:
        per_file[item.path] += estimated_seconds(item)
    # stable: within a file the tests keep their order (some use what an earlier one made)
    items.sort(key=lambda item: -per_file[item.path])
