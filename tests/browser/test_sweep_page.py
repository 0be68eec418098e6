"""The sweep page in a real Chromium against the real stack: a 2 x 1 VICReg map fills in live
with one collapsed and one healthy cell, clicking a cell opens its run, and a read-only share
link shows the map and offers no writes. Takes sweep.png into the screenshots folder (a
temporary one, or SCREENSHOT_DIR: `make screenshots` writes docs/screenshots/sweep.png)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.service.stack import ServiceStack
from tests.service.test_sweeps import VICREG_SWEEP

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_TIMEOUT_MS = 420_000


def test_the_sweep_map_fills_in_live_and_shares_read_only(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    visitor_context: BrowserContext,
    screenshots: Path,
    tmp_path: Path,
) -> None:
    created = writer.post("/api/sweeps", json=VICREG_SWEEP).json()
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}{created['url']}")
    expect(page.locator("#sweep-title")).to_contain_text("variance_weight")
    rows = page.locator("#cells-table tbody tr")
    expect(rows).to_have_count(2)
    # The cells fill in over the event stream, without reloading the page.
    expect(rows.nth(0).locator(".badge")).to_have_text("complete collapse", timeout=LIVE_TIMEOUT_MS)
    expect(rows.nth(1).locator(".badge")).to_have_text("healthy", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#sweep-summary")).to_contain_text("100% done", timeout=LIVE_TIMEOUT_MS)
    expect(rows.nth(0)).to_contain_text("stopped early")
    expect(page.locator("#cancel-sweep")).to_be_hidden()
    page.wait_for_function(
        "document.getElementById('sweep-map')?.data?.[0]?.text?.[0]?.length === 2"
    )
    labels = page.evaluate("document.getElementById('sweep-map').data[0].text[0]")
    assert labels[0].startswith("onset ") and labels[1].startswith("healthy<br>")
    # under the verdict, the value the shade stands for (hues alone cannot be compared)
    shade = page.evaluate("document.getElementById('shade-select').value")
    cells = writer.get(f"/api/sweeps/{created['id']}").json()["cells"]
    written = [float(label.split("<br>")[-1]) for label in labels]
    assert written == pytest.approx([cell["final"][shade] for cell in cells], rel=5e-3)
    line_x = page.evaluate("document.getElementById('sweep-line').data[0].x")
    assert line_x == [0, 25]
    page.select_option("#shade-select", "effective_rank")
    expect(page).to_have_url(re.compile(r"shade=effective_rank"))
    page.screenshot(path=str(screenshots / "sweep.png"), full_page=True)

    # The offline report draws the same map from a file, with the network off.
    report = tmp_path / "sweep-report.html"
    report.write_text(writer.get(f"/api/sweeps/{created['id']}/report.html").text)
    offline = writer_context.browser.new_context(offline=True)
    report_page = offline.new_page()
    report_page.goto(report.as_uri())
    report_page.wait_for_function("document.getElementById('sweep-map')?.data !== undefined")
    assert report_page.evaluate("document.getElementById('sweep-map').data[0].text[0]") == labels
    expect(report_page.locator("#cells-table tbody tr")).to_have_count(2)
    offline.close()

    # Clicking a cell of the map opens its run.
    page.locator("#sweep-map .nsewdrag").first.click(position={"x": 60, "y": 40})
    page.wait_for_url(re.compile(rf"/runs/{created['runs'][0]}$"))
    expect(page.locator("#stopped-early")).to_contain_text("complete collapse had held")

    share = writer.post(f"/api/sweeps/{created['id']}/share").json()
    visitor = visitor_context.new_page()
    visitor.goto(f"{dashboard_stack.base_url}{share['url']}")
    visitor_rows = visitor.locator("#cells-table tbody tr")
    expect(visitor_rows).to_have_count(2)
    expect(visitor_rows.nth(0).locator(".badge")).to_have_text("complete collapse")
    expect(visitor.locator("#cancel-sweep")).to_have_count(0)
    expect(visitor.locator("#create-share")).to_have_count(0)
    visitor.wait_for_function("document.getElementById('sweep-map')?.data !== undefined")
    refused = visitor.evaluate(
        "(id) => fetch(`/api/sweeps/${id}/cancel`, {method: 'POST'}).then((r) => r.status)",
        created["id"],
    )
    assert refused == 401


def test_the_launch_form_sweeps_a_field_with_a_live_run_count(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/launch?preset=vicreg")
    page.click("[data-sweep-toggle='options.variance_weight']")
    values = page.locator("#sweep-options-variance_weight")
    expect(values).to_be_focused()
    values.fill("0, 5, 25")
    page.locator("#sweep-seeds").fill("0, 1")
    expect(page.locator("#sweep-preview")).to_contain_text("3 variance_weight × 2 seeds = 6 runs")
    page.click("[data-sweep-toggle='lr']")
    page.locator("#sweep-lr").fill("0.01..1 x3 log")
    expect(page.locator("#sweep-preview")).to_contain_text("= 18 runs")
    expect(page.locator("#launch-button")).to_have_text("Launch sweep (18 runs)")
    page.click("[data-sweep-toggle='lr']")  # back to a single value
    # an integer field's range is rounded and deduplicated, as the server does: 1, 1.5, 2,
    # 2.5, 3 -> 1, 2, 3 (halves to even)
    page.click("[data-sweep-toggle='epochs']")
    page.locator("#sweep-epochs").fill("1..3 x5")
    expect(page.locator("#sweep-preview")).to_contain_text("3 variance_weight × 3 epochs")
    page.click("[data-sweep-toggle='epochs']")

    before = writer.get("/api/sweeps").json()["count"]
    values.fill("0, -1")
    # the preview validates every run as the launch will: it says so before the click
    expect(page.locator("#sweep-preview")).to_contain_text("value -1")
    page.click("#launch-button")
    error = page.locator(".field[data-field='options.variance_weight'] .error")
    expect(error).to_contain_text("value -1")
    expect(page.locator("#launch-button")).to_have_text("Launch sweep")  # not stuck
    expect(page.locator("#launch-button")).to_be_enabled()
    assert writer.get("/api/sweeps").json()["count"] == before

    values.fill("0, 25")
    expect(error).to_have_text("")  # the refused value's error goes as the field is edited
    page.locator("#sweep-seeds").fill("0")
    page.locator("#field-epochs").fill("2")
    # labels file every run of the sweep; the webhook is the sweep's (its runs' troubles, its end)
    page.fill("#label-project", "swept-from-form")
    page.fill("#label-tags", "vw-map")
    page.fill("#label-alerts", "http://127.0.0.1:9/sweep-hook")
    posted = page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/sweeps"))
    with posted as request:
        page.click("#launch-button")
    body = request.value.post_data_json
    assert body["alerts"] == ["http://127.0.0.1:9/sweep-hook"] and "alerts" not in body["base"]
    assert (body["base"]["project"], body["base"]["tags"]) == ("swept-from-form", ["vw-map"])
    page.wait_for_url(re.compile(r"/sweeps/[0-9a-f]+$"))
    sweep_id = page.url.rsplit("/", 1)[1]
    sweep = writer.post(f"/api/sweeps/{sweep_id}/cancel").json()  # nothing of it need train
    assert [cell["point"] for cell in sweep["cells"]] == [
        {"variance_weight": 0},
        {"variance_weight": 25},
    ]
    filed = writer.get("/api/runs", params={"project": "swept-from-form", "tag": "vw-map"})
    assert sorted(run["id"] for run in filed.json()["data"]) == sorted(
        run["id"] for cell in sweep["cells"] for run in cell["runs"]
    )
    assert sweep["base"]["preset"] == "vicreg" and sweep["base"]["epochs"] == 2
    expect(page.locator("#cells-table tbody tr")).to_have_count(2)


def test_a_sweep_share_link_opens_no_run_page(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    visitor_context: BrowserContext,
) -> None:
    """The read-only view of a sweep (`/s/<token>`) links none of its runs to their writer
    pages, from the cells table or from a click on the map, as the comparison's share view
    does not (a cancelled sweep: nothing of it need train)."""
    created = writer.post("/api/sweeps", json=VICREG_SWEEP).json()
    writer.post(f"/api/sweeps/{created['id']}/cancel")
    share = writer.post(f"/api/sweeps/{created['id']}/share").json()
    page = visitor_context.new_page()
    try:
        url = f"{dashboard_stack.base_url}{share['url']}"
        page.goto(url)
        rows = page.locator("#cells-table tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.nth(0).locator(".run-link")).to_contain_text("seed 0")
        assert page.locator("#cells-table a").count() == 0
        page.wait_for_function("document.getElementById('sweep-map')?.data !== undefined")
        page.locator("#sweep-map .nsewdrag").first.click(position={"x": 60, "y": 40})
        page.wait_for_timeout(1000)
        assert page.url == url
    finally:
        page.close()
