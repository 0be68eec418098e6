"""Fixtures for the dashboard tests: the real service stack (redis-server, uvicorn, a train and a
projection Celery worker, a temporary SQLite file and data directory, writes protected by an
API token) and Debian's Chromium driven by Playwright.

The stack is the service tests' own (``tests/service/stack.py``); only the API token differs,
so the share-link tests can check that a read-only visitor is refused.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Playwright,
    ViewportSize,
    expect,
    sync_playwright,
)

from tests.service.conftest import redis_server
from tests.service.stack import TINY_RUN, RedisServer, ServiceStack, wait_until

__all__ = ["redis_server"]  # re-exported fixture: the stack below runs on it

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
API_TOKEN = "browser-test-token"
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# How long an expect() waits for what a page shows: Playwright's 5 s is short for a page
# that loads Plotly and asks the API on two cores busy training; what never shows still fails
EXPECT_TIMEOUT_MS = 20_000

# A run that collapses completely within a few seconds on one CPU thread: SimSiam without
# stop-gradient with a large constant learning rate (checked with `collapse-lab train`).
COLLAPSING_RUN: dict[str, Any] = {
    **{key: value for key, value in TINY_RUN.items() if key != "method"},
    "preset": "simsiam-no-stopgrad",
    "epochs": 5,
    "lr": 1.0,
    "schedule": "constant",
}


@pytest.fixture(scope="session")
def dashboard_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    """API + one train worker + one projection worker, with writes protected by API_TOKEN."""
    workdir = tmp_path_factory.mktemp("dashboard-stack")
    stack = ServiceStack(
        workdir=workdir,
        redis_url=redis_server.url.rsplit("/", 1)[0] + "/3",  # apart from the service tests
        database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
        extra_env={"API_TOKEN": API_TOKEN},
    )
    stack.start_api()
    stack.start_worker("browser-train", "train")
    stack.start_worker("browser-projection", "projection")
    stack.wait_for_workers(train=1)
    yield stack
    stack.stop()


@pytest.fixture(scope="session")
def writer(dashboard_stack: ServiceStack) -> Iterator[httpx.Client]:
    """HTTP client holding the API token."""
    with httpx.Client(
        base_url=dashboard_stack.base_url,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        timeout=30,
    ) as client:
        yield client


def launch_and_finish(client: httpx.Client, config: dict[str, Any]) -> dict[str, Any]:
    """Launch over HTTP and wait until the run succeeded and every epoch has a projection."""
    response = client.post("/api/runs", json=config)
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    def finished() -> dict[str, Any] | None:
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["status"] not in ("failed", "cancelled"), run
        return run if run["status"] == "succeeded" else None

    run: dict[str, Any] = wait_until(finished, 300, interval=0.5, what=f"run {run_id} to succeed")
    wanted = set(range(run["epochs"] + 1))

    def projected() -> bool:
        epochs = client.get(f"/api/runs/{run_id}/projections").json()["epochs"]
        return wanted <= set(epochs)

    wait_until(projected, 300, interval=0.5, what=f"projections of run {run_id}")
    return run


@pytest.fixture(scope="session")
def finished_runs(writer: httpx.Client) -> list[dict[str, Any]]:
    """Two finished tiny runs: SimSiam without stop-gradient, and SimSiam itself."""
    healthy = {**COLLAPSING_RUN, "preset": "simsiam", "lr": 0.06, "schedule": "cosine"}
    return [launch_and_finish(writer, COLLAPSING_RUN), launch_and_finish(writer, healthy)]


@pytest.fixture(scope="session")
def playwright_instance() -> Iterator[Playwright]:
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="session")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (apt-get install chromium)")
    browser = playwright_instance.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture
def writer_context(browser: Browser) -> Iterator[BrowserContext]:
    """A browser that knows the API token (as a user who saved it in the token dialog)."""
    context = browser.new_context(viewport=DESKTOP)
    context.add_init_script(f"localStorage.setItem('collapse-lab.api-token', '{API_TOKEN}')")
    yield context
    context.close()


@pytest.fixture
def visitor_context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser with no credentials at all."""
    context = browser.new_context(viewport=DESKTOP)
    yield context
    context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the page screenshots go: a temporary folder, so that a test run writes nothing
    into the repository, or SCREENSHOT_DIR (`make screenshots` refreshes those of the README)."""
    chosen = os.environ.get("SCREENSHOT_DIR")
    folder = Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
