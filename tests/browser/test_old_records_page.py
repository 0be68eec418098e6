"""The pages of runs stored by the first release (tests/data/first-release.sqlite, made by
commit ce4d7e6): the run page and the compare page draw their charts from the metric
catalogue and show no "null" or "undefined" where an old record lacks a later field."""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import DESKTOP
from tests.service.stack import RedisServer, ServiceStack, api_only_stack
from tests.service.test_old_records import FIRST_RELEASE

pytestmark = [pytest.mark.browser]


@pytest.fixture(scope="module")
def old_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    workdir = tmp_path_factory.mktemp("first-release-pages")
    shutil.copy(FIRST_RELEASE, workdir / "collapse_lab.db")
    with api_only_stack(redis_server.url.replace("/0", "/5"), workdir) as stack:
        yield stack


def _run_ids() -> list[str]:
    with sqlite3.connect(FIRST_RELEASE) as db:
        return [row[0] for row in db.execute("select id from runs order by created_at")]


def test_old_runs_pages_draw_every_chart_without_nulls(
    old_stack: ServiceStack, browser: Browser
) -> None:
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    ids = _run_ids()
    for run_id in ids:
        page.goto(f"{old_stack.base_url}/runs/{run_id}")
        page.wait_for_function(
            "() => (document.getElementById('plot-rank')?.data?.[0]?.x || []).length === 3"
        )
        banner = page.locator("#verdict-banner").inner_text()
        assert "healthy" in banner
        body = page.locator("main").inner_text()
        assert "null" not in body and "undefined" not in body and "NaN" not in body, body
        drawn = page.evaluate(
            "() => [...document.querySelectorAll('#plots .plot')].map((p) => p.dataset.metric)"
        )
        # the first release measured neither the participation ratio nor LiDAR nor W2:
        # their charts are left out, the others drawn
        assert {"std", "rank", "cosine", "knn", "loss", "spectrum", "plane"} <= set(drawn)
        assert "directions" not in drawn and "w2" not in drawn
    page.goto(f"{old_stack.base_url}/compare?runs={','.join(ids)}")
    page.wait_for_function("() => (document.getElementById('plot-rank')?.data || []).length === 2")
    assert "undefined" not in page.locator("main").inner_text()
    context.close()
