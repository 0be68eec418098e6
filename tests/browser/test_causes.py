"""The verdict's cause where a researcher reads it: under the verdict on the run page, on the
runs list's verdict badge (hover), in the compare matrix, in the epoch export and the report.

The collapsed run is the session's SimSiam without stop-gradient (``finished_runs``): its
cause is ``stop_gradient``, read from its configuration (no probe sees a stop-gradient) and
confirmed by its measured collapse; the healthy SimSiam run has none."""

from __future__ import annotations

import csv
import io
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.service.stack import ServiceStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_cause_is_shown_under_the_verdict_in_the_list_matrix_export_and_report(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    finished_runs: list[dict[str, Any]],
    writer_context: BrowserContext,
) -> None:
    collapsed, healthy = (writer.get(f"/api/runs/{r['id']}").json() for r in finished_runs)
    cause = collapsed["verdict"]["cause"]
    assert cause["guard"] == "stop_gradient"
    assert cause["reason"].startswith("From the configuration (stop_gradient false")
    assert "Chen & He" in cause["advice"]
    assert healthy["verdict"]["kind"] == "healthy" and healthy["verdict"]["cause"] is None

    page = writer_context.new_page()
    base = dashboard_stack.base_url
    page.goto(f"{base}/runs/{collapsed['id']}")
    block = page.locator("#verdict-banner .verdict-cause")
    expect(block).to_contain_text("Cause: stop gradient")
    expect(block).to_contain_text("From the configuration")
    expect(block).to_contain_text("Try: Put the stop-gradient back")
    page.goto(f"{base}/runs/{healthy['id']}")
    expect(page.locator(".verdict-title").first).to_have_text("healthy")
    expect(page.locator(".verdict-cause")).to_have_count(0)

    # the runs list: hovering the verdict badge gives the reason and the cause
    page.goto(f"{base}/?verdict=complete_collapse")
    row = page.locator(f"tr:has(a[href='/runs/{collapsed['id']}'])").first
    badge = row.locator(".verdict-cell .badge")
    expect(badge).to_have_text("complete collapse")
    title = badge.get_attribute("title") or ""
    assert "Cause: stop gradient." in title and "Try:" in title

    # the compare matrix names the cause in the cell
    page.goto(f"{base}/compare?runs={collapsed['id']},{healthy['id']}")
    cause_chip = page.locator("#matrix .matrix-cause")
    expect(cause_chip).to_have_count(1)
    expect(cause_chip).to_have_text("cause: stop gradient")

    # the export: one column per field of the cause
    export = writer.get(f"/api/runs/{collapsed['id']}/epochs.csv")
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert rows[-1]["verdict.cause.guard"] == "stop_gradient"
    assert rows[0]["verdict.cause.guard"] == ""  # epoch 0: healthy, no cause
    assert "verdict.cause" not in rows[0]  # null in healthy epochs: no column of its own

    # the offline report draws the same block
    report = writer_context.new_page()
    report.goto(f"{base}/api/runs/{collapsed['id']}/report.html")
    expect(report.locator(".verdict-cause").first).to_contain_text("Cause: stop gradient")
