"""Markers the test folders imply, and how `make test` shares the tests out.

Everything under tests/service and tests/browser starts services (redis-server, uvicorn,
Celery workers), so `make check` leaves it out.

`make test` runs two pytest-xdist processes (`--dist loadgroup`), each group of tests whole
on one of them, the groups in the order given here:
- the files that use a session's shared stack (``dashboard_stack``, ``stack``) form one group
  per stack, so that one process starts it rather than both;
- every other file is a group of its own (its module fixtures and caches built once);
- the groups run longest first, as estimated from their tests' markers, so that a long file
  (tests/test_collapse_runs.py trains for minutes) does not start while the other process
  has nothing left, and the many quick files fill in at the end."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

SERVICE_FOLDERS = tuple(Path(__file__).parent / name for name in ("service", "browser"))
# session fixtures that start a whole stack, the first one a file uses naming its group
SHARED_STACKS = ("dashboard_stack", "stack")
# rough seconds per test as `pytest --durations=0` measured them here: trains for real,
# starts or drives services, neither
SLOW_S, SERVICE_S, QUICK_S = 20.0, 1.0, 0.1


def estimated_seconds(item: pytest.Item) -> float:
    if item.get_closest_marker("slow"):
        return SLOW_S
    if item.get_closest_marker("service"):
        return SERVICE_S
    return QUICK_S


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the xdist_group marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if any(item.path.is_relative_to(folder) for folder in SERVICE_FOLDERS):
            item.add_marker(pytest.mark.service)
    group_of: dict[Path, str] = {}
    for item in items:
        shared = [name for name in SHARED_STACKS if name in item.fixturenames]
        if shared and item.path not in group_of:
            group_of[item.path] = shared[0]
    seconds: defaultdict[str, float] = defaultdict(float)
    for item in items:
        group = group_of.setdefault(item.path, item.nodeid.split("::")[0])
        item.add_marker(pytest.mark.xdist_group(group))
        seconds[group] += estimated_seconds(item)

    def rank(item: pytest.Item) -> tuple[bool, float]:
        group = group_of[item.path]
        return group not in SHARED_STACKS, -seconds[group]

    items.sort(key=rank)  # stable: a file's tests keep their order (some reuse what one trained)
