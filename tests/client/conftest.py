"""The client package is tested from its source folder: ``client/`` goes on sys.path, so
these tests run in any environment with numpy, httpx and pytest, torch or not."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
if str(CLIENT_DIR) not in sys.path:
    sys.path.insert(0, str(CLIENT_DIR))

from tests.client.fake_server import FakeCollapseLab  # noqa: E402


@pytest.fixture
def server() -> Iterator[FakeCollapseLab]:
    fake = FakeCollapseLab()
    yield fake
    fake.stop()
