"""The dashboard in a real Chromium against the real stack: launch from the form and watch the
run collapse live, server-side validation next to the field, read-only share links, the
comparison page, and screenshots of every page (to a temporary folder; `make screenshots` writes
them to docs/screenshots/)."""

from __future__ import annotations

import importlib.metadata
import re
import socket
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import COLLAPSING_RUN, PHONE
from tests.service.stack import ServiceStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LIVE_TIMEOUT_MS = 420_000  # generous: the CI machine may be busy
# The collapsing run, typed into the form (a few more epochs so the page sees it train).
FORM_VALUES = {
    key: value
    for key, value in COLLAPSING_RUN.items()
    if key not in ("preset", "dataset", "schedule")
} | {"epochs": 15, "train_size": 1024}  # several seconds of epochs arriving, even when warm


def plot_points(page: Page, metric: str) -> list[Any]:
    """x values of the first trace of a run-page plot (its epochs)."""
    return page.evaluate(
        "(id) => { const d = document.getElementById(id); return d && d.data ? d.data[0].x : [] }",
        f"plot-{metric}",
    )


def umap_state(page: Page) -> dict[str, Any]:
    return page.evaluate(
        """() => { const p = document.querySelector('.umap-plot');
        return {epoch: p.dataset.epoch,
                head: p.data.map((t) => [t.name, Array.from(t.x).slice(0, 5)])}; }"""
    )


def test_launch_from_form_then_watch_it_collapse_live(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, screenshots: Path
) -> None:
    base = dashboard_stack.base_url
    runs_page = writer_context.new_page()
    runs_page.goto(base + "/")
    expect(runs_page.locator("#live-state")).to_have_text("live", timeout=30_000)

    page = writer_context.new_page()
    page.goto(base + "/launch")
    page.click('[data-preset="simsiam-no-stopgrad"]')
    expect(page.locator("#field-method")).to_have_value("simsiam")
    expect(page.locator("#field-options-stop_gradient")).not_to_be_checked()
    while (closed := page.locator("details.form-section:not([open]) > summary")).count():
        closed.first.click()
    # the labels are the run config's field titles (contract/config.py)
    expect(page.locator("label[for=field-lr]")).to_have_text("Base learning rate")
    expect(page.locator("label[for=field-train_size]")).to_have_text("Training images")
    for name, value in FORM_VALUES.items():
        page.fill(f"#field-{name}", str(value))
    page.select_option("#field-schedule", "constant")
    page.screenshot(path=screenshots / "launch.png", full_page=True)
    page.click("#launch-button")

    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+$"))
    found = re.search(r"/runs/([0-9a-f]+)", page.url)  # the page may add ?epoch= as it plays
    assert found is not None, page.url
    run_id = found.group(1)
    page.evaluate("window.__sameDocument = true")  # a reload would drop this

    # Epochs arrive one after another on the open page.
    counts: set[int] = set()
    page.wait_for_function("document.getElementById('plot-std')?.data !== undefined")
    deadline = time.monotonic() + LIVE_TIMEOUT_MS / 1000
    while (status := page.locator("#run-status").inner_text()) != "succeeded":
        assert status in ("queued", "running"), f"the run ended {status}"
        assert time.monotonic() < deadline, "the run did not finish in time"
        counts.add(len(plot_points(page, "std")))
        page.wait_for_timeout(150)
    assert len({c for c in counts if c > 0}) >= 2, f"no live growth seen: {counts}"

    banner = page.locator("#verdict-banner")
    expect(banner).to_have_attribute("data-kind", "complete_collapse", timeout=LIVE_TIMEOUT_MS)
    expect(page.locator("#verdict-title")).to_contain_text("complete collapse from epoch")
    assert page.evaluate("window.__sameDocument") is True
    every_epoch_once = list(range(FORM_VALUES["epochs"] + 1))
    for metric in ("std", "rank", "cosine", "knn", "loss", "schedule"):
        assert plot_points(page, metric) == every_epoch_once, metric

    # The UMAP slider changes frames.
    page.wait_for_function(  # the slider follows the newest projection while it arrives
        "Number(document.querySelector('.umap-plot').dataset.epoch) >= 1", timeout=LIVE_TIMEOUT_MS
    )
    before = umap_state(page)
    slider = page.locator(".epoch-slider")
    slider.focus()
    page.keyboard.press("Home")
    page.wait_for_function("document.querySelector('.umap-plot').dataset.epoch === '0'")
    after = umap_state(page)
    assert before["epoch"] != "0"
    assert after["head"] != before["head"]
    assert "epoch=0" in page.url

    # Clicking a UMAP point shows that probe image's thumbnail and label.
    target = page.evaluate(
        """() => { const p = document.querySelector('.umap-plot');
        const t = p.data[0], full = p._fullLayout, box = p.getBoundingClientRect();
        return {x: box.left + full._size.l + full.xaxis.l2p(t.x[0]),
                y: box.top + full._size.t + full.yaxis.l2p(t.y[0])}; }"""
    )
    page.mouse.move(target["x"], target["y"])
    page.mouse.click(target["x"], target["y"])
    figure = page.locator(".probe-figure")
    expect(figure).to_be_visible(timeout=10_000)
    shown = int(figure.get_attribute("data-index") or -1)
    page.wait_for_function(
        "document.querySelector('.probe-thumb').complete"
        " && document.querySelector('.probe-thumb').naturalWidth > 0"
    )
    assert shown >= 0
    expect(page.locator(".probe-caption")).to_contain_text(f"Probe image {shown}, label ")
    page.screenshot(path=screenshots / "run.png", full_page=True)

    # The runs page, open all along, shows the run and its verdict without a reload.
    row = runs_page.locator(f'tr[data-run-id="{run_id}"]')
    expect(row.locator(".badge")).to_have_text("complete collapse", timeout=30_000)
    expect(row.locator(".status")).to_have_text("succeeded")
    runs_page.screenshot(path=screenshots / "runs.png", full_page=True)
    runs_page.select_option("#filter-status", "failed")
    expect(row).to_have_count(0)
    assert "status=failed" in runs_page.url

    # "Launch again with changes" opens the form prefilled with this run's config.
    page.click("#relaunch")
    page.wait_for_url(re.compile(rf"/launch\?from={run_id}$"))
    expect(page.locator("#field-epochs")).to_have_value(str(FORM_VALUES["epochs"]))
    expect(page.locator("#field-lr")).to_have_value("1")
    expect(page.locator("#field-options-stop_gradient")).not_to_be_checked()

    phone = writer_context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(f"{base}/runs/{run_id}")
    expect(phone.locator("#verdict-banner")).to_have_attribute("data-kind", "complete_collapse")
    phone.wait_for_function("document.querySelector('.umap-plot').dataset.epoch !== undefined")
    # the charts take the phone layout app.css declares: titles wrapped to a phone's card
    titles = phone.eval_on_selector_all(
        ".plot .gtitle",
        "els => els.map(e => [...e.querySelectorAll('tspan.line')].map(t => t.textContent))",
    )
    assert titles and max(len(line) for lines in titles for line in lines) <= 44, titles
    assert any(len(lines) > 1 for lines in titles), titles
    # and the y axes' titles to the plot's height: none runs up into the chart's title
    axis_titles = phone.eval_on_selector_all(
        ".plot .ytitle, .plot .y2title",
        "els => els.map(e => [...e.querySelectorAll('tspan.line')].map(t => t.textContent)"
        " .concat(e.querySelector('tspan.line') ? [] : [e.textContent]))",
    )
    assert axis_titles and max(len(x) for lines in axis_titles for x in lines) <= 26, axis_titles
    subtitles = phone.eval_on_selector_all(
        ".plot .gtitle-subtitle",
        "els => els.map(e => [...e.querySelectorAll('tspan.line')].map(t => t.textContent))",
    )
    assert subtitles and max(len(x) for lines in subtitles for x in lines) <= 62, subtitles
    # two close levels (0 and 1 on a chart reaching ~90): the lower one's label at the left
    # end of its line, above it, not below it over the epoch numbers
    placed = phone.evaluate(
        """() => Object.fromEntries(document.getElementById('plot-augmentation').layout
            .annotations.map((a) => [a.text, [a.x, a.yanchor]]))"""
    )
    assert placed["views vary as much as the images: 1"] == [1, "bottom"], placed
    assert placed["views of an image agree: 0"] == [0, "bottom"], placed
    phone.screenshot(path=screenshots / "run-phone.png", full_page=True)


@pytest.mark.parametrize(
    ("method", "field", "value", "message"),
    [
        ("simsiam", "epochs", "100000", "less than or equal"),
        ("byol", "options.base_momentum", "2", "less than or equal to 1"),
    ],
)
def test_invalid_config_shows_the_field_error_and_queues_nothing(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    writer: httpx.Client,
    screenshots: Path,
    method: str,
    field: str,
    value: str,
    message: str,
) -> None:
    before = writer.get("/api/runs").json()["count"]
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/launch?method={method}")
    input_id = "#field-" + field.replace(".", "-")
    page.fill(input_id, value)
    page.click("#launch-button")

    error = page.locator(f'.field[data-field="{field}"] .error')
    expect(error).to_contain_text(message)
    expect(page.locator(input_id)).to_have_attribute("aria-invalid", "true")
    expect(page.locator(input_id)).to_be_focused()
    assert page.url.endswith(f"/launch?method={method}")
    assert writer.get("/api/runs").json()["count"] == before
    if field == "epochs":
        page.screenshot(path=screenshots / "launch-error.png")


def test_the_launch_form_states_this_servers_limits(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, writer: httpx.Client
) -> None:
    # the run config allows 1000 epochs; this server (MAX_EPOCHS...) allows fewer
    limits = writer.get("/api/methods").json()["limits"]
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/launch")
    for field in ("epochs", "train_size"):
        expect(page.locator(f"#field-{field}")).to_have_attribute("max", str(limits[field]))
        expect(page.locator(f"#field-{field}-help")).to_contain_text(f"≤ {limits[field]}")
    page.fill("#field-epochs", str(limits["epochs"] + 1))
    page.click("#launch-button")
    error = page.locator('.field[data-field="epochs"] .error')
    expect(error).to_contain_text(f"this server's limit of {limits['epochs']} (MAX_EPOCHS)")


def test_share_link_shows_the_plots_read_only_and_can_be_revoked(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    visitor_context: BrowserContext,
    finished_runs: list[dict[str, Any]],
    screenshots: Path,
) -> None:
    base = dashboard_stack.base_url
    run = finished_runs[0]
    owner = writer_context.new_page()
    owner.goto(f"{base}/runs/{run['id']}")
    owner.click("#create-share")
    share_input = owner.locator(".share-url")
    expect(share_input).to_have_value(re.compile(r"/s/[\w-]+$"))
    share_url = share_input.input_value()

    page = visitor_context.new_page()
    page.goto(share_url)
    first_paint_ms = page.evaluate(
        "performance.getEntriesByName('first-contentful-paint')[0].startTime"
    )
    assert first_paint_ms < 1000  # the 4 MB Plotly.js loads async, after first paint
    expect(page.locator("#verdict-banner")).to_have_attribute("data-kind", "complete_collapse")
    epochs = list(range(run["epochs"] + 1))
    page.wait_for_function("document.getElementById('plot-rank').data?.[0]?.x?.length > 0")
    assert plot_points(page, "std") == epochs
    assert plot_points(page, "rank") == epochs
    # the newer diagnostics have their own plots, the verdict its findings, the run its place
    assert plot_points(page, "directions") == epochs
    assert plot_points(page, "w2") == epochs
    findings = (run["verdict"] or {}).get("findings", [])
    expect(page.locator("#verdict-banner .verdict-findings li")).to_have_count(len(findings))
    placement = page.locator("#placement-table")
    expect(placement).to_contain_text(socket.gethostname())
    expect(placement).to_contain_text(importlib.metadata.version("torch"))
    expect(placement).to_contain_text("peak GPU memory– (CPU)")
    page.wait_for_function("document.querySelector('.umap-plot')?.dataset.epoch !== undefined")
    expect(page.locator(".readonly-tag")).to_be_visible()
    for control in ("#cancel-button", "#relaunch", "#create-share", "#token-button"):
        expect(page.locator(control)).to_have_count(0)
    page.screenshot(path=screenshots / "share.png", full_page=True)

    # Backbone / projector toggle: same records, other representation, state in the URL.
    projector_rank = page.evaluate("document.getElementById('plot-rank').data[0].y")
    page.check('input[name="rep"][value="backbone"]')
    assert "rep=backbone" in page.url
    backbone_rank = page.evaluate("document.getElementById('plot-rank').data[0].y")
    assert len(backbone_rank) == len(projector_rank) and backbone_rank != projector_rank

    # Whatever the page hides, the server refuses writes from this browser.
    statuses = page.evaluate(
        """async (id) => {
            const launch = await fetch('/api/runs', {method: 'POST',
                headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({preset: 'simsiam'})});
            const cancel = await fetch(`/api/runs/${id}/cancel`, {method: 'POST'});
            return [launch.status, cancel.status]; }""",
        run["id"],
    )
    assert statuses == [401, 401]

    owner.click(".share-row button.danger")
    expect(owner.locator(".share-row")).to_have_count(0)
    response = page.goto(share_url)
    assert response is not None and response.status == 404


def test_compare_two_runs_on_the_same_plots(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    finished_runs: list[dict[str, Any]],
    screenshots: Path,
) -> None:
    ids = [run["id"] for run in finished_runs]
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/compare?runs={','.join(ids)}")
    page.wait_for_function("document.getElementById('plot-rank')?.data?.length === 2")
    for metric in ("std", "rank", "knn", "loss", "plane", "spectrum"):
        names = page.evaluate(
            "(id) => document.getElementById(id).data.map((t) => t.name)", f"plot-{metric}"
        )
        for run_id in ids:
            assert any(run_id[:6] in name for name in names), (metric, names)
    rank_x = page.evaluate("document.getElementById('plot-rank').data.map((t) => t.x)")
    assert rank_x == [list(range(run["epochs"] + 1)) for run in finished_runs]

    matrix = page.locator(".collapse-matrix")
    expect(matrix.locator(".matrix-cell")).to_have_count(2)
    expect(matrix).to_contain_text("without stop-gradient")

    page.wait_for_function(
        "[...document.querySelectorAll('.umap-plot')].filter((p) => p.dataset.epoch).length === 2",
        timeout=LIVE_TIMEOUT_MS,
    )
    shown = page.evaluate(
        "[...document.querySelectorAll('.umap-plot')].map((p) => p.dataset.epoch)"
    )
    assert shown[0] == shown[1]
    page.screenshot(path=screenshots / "compare.png", full_page=True)


def test_the_collapse_matrix_hides_no_run_of_a_configuration(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    screenshots: Path,
) -> None:
    # three runs of one configuration (one loop of one name, three seeds: the matrix files an
    # external run under its name): the newest is the cell, the two others a link each
    ids = [
        writer.post(
            "/api/external-runs", json={"name": "my loop", "config": {"seed": seed}}
        ).json()["id"]
        for seed in range(3)
    ]
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/compare?runs={','.join(ids)}")
    matrix = page.locator("#matrix .collapse-matrix")
    expect(matrix.locator(".matrix-cell")).to_have_count(1)
    expect(matrix.locator(".matrix-more")).to_contain_text("and 2 more")
    links = matrix.locator(".matrix-more-run")
    expect(links).to_have_count(2)
    hrefs = {links.nth(i).get_attribute("href") for i in range(2)}
    newest = matrix.locator(".matrix-cell").get_attribute("href")
    assert newest == f"/runs/{ids[-1]}"
    assert hrefs == {f"/runs/{run_id}" for run_id in ids[:-1]}
    matrix.screenshot(path=screenshots / "compare-matrix-seeds.png")
    # on a phone the matrix stacks its cells: nothing to scroll sideways
    phone = writer_context.new_page()
    phone.set_viewport_size(PHONE)
    phone.goto(page.url)
    expect(phone.locator("#matrix .matrix-cell")).to_have_count(1)
    overflow = phone.evaluate(
        "(e => e.scrollWidth - e.clientWidth)(document.getElementById('matrix'))"
    )
    assert overflow <= 0, overflow


def test_banner_says_which_part_of_the_service_is_down(
    dashboard_stack: ServiceStack, visitor_context: BrowserContext
) -> None:
    page = visitor_context.new_page()
    page.goto(dashboard_stack.base_url + "/")
    banner = page.locator("#health-banner")
    expect(banner).to_be_hidden()

    dashboard_stack.kill_worker("browser-train")
    try:
        expect(banner).to_contain_text("No training worker is running", timeout=60_000)
        dashboard_stack.stop_api()
        expect(banner).to_contain_text("The API is unreachable", timeout=30_000)
    finally:
        if dashboard_stack.api is None:
            dashboard_stack.start_api()
        dashboard_stack.start_worker("browser-train", "train")
        dashboard_stack.wait_for_workers(train=1)
    expect(banner).to_be_hidden(timeout=30_000)


def test_cancel_button_stops_a_running_run(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, writer: httpx.Client
) -> None:
    response = writer.post("/api/runs", json={**COLLAPSING_RUN, "epochs": 200})
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("running", timeout=LIVE_TIMEOUT_MS)
    page.click("#cancel-button")
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=60_000)
    expect(page.locator("#cancel-button")).to_be_hidden()
    assert writer.get(f"/api/runs/{run_id}").json()["status"] == "cancelled"


def test_zoo_button_queues_every_preset_and_opens_their_matrix(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, writer: httpx.Client
) -> None:
    presets = writer.get("/api/methods").json()["presets"]
    page = writer_context.new_page()
    page.goto(dashboard_stack.base_url + "/launch")
    while (closed := page.locator("details.form-section:not([open]) > summary")).count():
        closed.first.click()
    # small runs: the first presets start training before the cancels below reach them
    zoo_fields = {"epochs": 1, "train_size": 256, "probe_size": 128}
    for name, value in zoo_fields.items():
        page.fill(f"#field-{name}", str(value))
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#zoo-button")

    page.wait_for_url(re.compile(r"/compare\?runs="))
    # parsed, not split: the page may already have rewritten its address (commas encoded,
    # the epoch it shows added)
    ids = parse_qs(urlsplit(page.url).query)["runs"][0].split(",")
    try:
        assert len(ids) == len(presets)
        matrix = page.locator(".collapse-matrix")
        expect(matrix.locator(".matrix-cell")).to_have_count(len(presets), timeout=30_000)
        for run_id in ids:
            run = writer.get(f"/api/runs/{run_id}").json()
            # the form's zoo fields reached every preset
            assert {name: run["config"][name] for name in zoo_fields} == zoo_fields
        assert {writer.get(f"/api/runs/{i}").json()["preset"] for i in ids} == {
            p["name"] for p in presets
        }
    finally:  # keep the shared worker free for the other tests
        for run_id in ids:
            writer.post(f"/api/runs/{run_id}/cancel")
