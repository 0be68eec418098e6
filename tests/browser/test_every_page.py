"""Every page of the dashboard, opened for every kind of run a first hour produces: a finished
healthy run, a collapsed run, an external run (logged through the collapse_lab client) and a
failed run, with the runs list, the launch form, the run pages, the comparison, a sweep, the
share views and the three offline reports, and a comparison with an external run still waiting
for its first epoch. A page fails when it shows a value the code never meant to show
(``null``, ``undefined``, ``NaN``, ``[object Object]``), in a folded section too, or when the
browser reports an error (an uncaught exception, a console error, a failed request).

The healthy and collapsed runs are the session's trained ones (``finished_runs``)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import pytest
from collapse_lab import Monitor
from playwright.sync_api import BrowserContext, ConsoleMessage, Page, expect

from tests.browser.conftest import API_TOKEN, COLLAPSING_RUN
from tests.service.stack import ServiceStack, wait_until
from tests.service.test_sweeps import VICREG_SWEEP

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Words that only reach the screen when code prints a missing or unformatted value.
# "nullnull" is two nulls side by side: no word boundary between them, so none is asked for
# after a leaked value, only before it (a word ending in "null" is not English)
LEAKED_VALUE = re.compile(r"\b(null|undefined|NaN)|\[object Object\]")
# A researcher's config with nulls at the top and inside a list: none may show as "null".
EXTERNAL_CONFIG: dict[str, Any] = {"lr": 0.3, "warmup": None, "milestones": [1, None, {"z": 2}]}
SETTLE_S = 1.0  # a page is drawn when its text and its plots stopped changing for this long
PAGE_TIMEOUT_S = 60.0
# Pages open at once: each run page holds a stream open, and Chromium keeps at most six
# connections to one server
PAGES_AT_ONCE = 4


@dataclass
class PageProblems:
    """What the browser reported while a page was open."""

    errors: list[str] = field(default_factory=list)

    def watch(self, page: Page) -> None:
        page.on("pageerror", lambda exc: self.errors.append(f"uncaught: {exc}"))
        page.on("console", self._console)

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console error: {message.text} ({message.location})")


def settled_texts(pages: list[Page]) -> list[str]:
    """Each page's visible text once it and its plots stopped changing, every folded section
    (``<details>``) unfolded: a user opens them. The pages settle side by side: each mostly
    waits (its requests, its timers), so one at a time left the cores idle."""
    deadline = time.monotonic() + PAGE_TIMEOUT_S
    last: list[Any] = [None] * len(pages)
    stable_since = [time.monotonic()] * len(pages)
    texts: dict[int, str] = {}
    while len(texts) < len(pages) and time.monotonic() < deadline:
        for index, page in enumerate(pages):
            if index in texts:
                continue
            state = page.evaluate(
                """() => [document.querySelectorAll('details:not([open])').forEach(
                            (details) => { details.open = true; }),
                          document.body.innerText,
                          document.querySelectorAll('.js-plotly-plot').length,
                          document.querySelectorAll('.state-loading').length]"""
            )
            if state != last[index]:
                last[index], stable_since[index] = state, time.monotonic()
            elif time.monotonic() - stable_since[index] >= SETTLE_S and not state[3]:
                texts[index] = str(state[1])
        time.sleep(0.2)
    unsettled = [page.url for index, page in enumerate(pages) if index not in texts]
    assert not unsettled, f"never settled: {unsettled}"
    return [texts[index] for index in range(len(pages))]


def leaked_values(text: str) -> list[str]:
    """Each line of ``text`` that shows a leaked value."""
    return [line.strip() for line in text.splitlines() if LEAKED_VALUE.search(line)]


@pytest.fixture(scope="module")
def external_run(dashboard_stack: ServiceStack) -> dict[str, Any]:
    """A run logged from a researcher's own loop, finished, with its verdict stored."""
    rng = np.random.default_rng(1)
    base = rng.standard_normal((128, 16))
    with Monitor(
        dashboard_stack.base_url, token=API_TOKEN, name="first-hour-loop", config=EXTERNAL_CONFIG
    ) as monitor:
        for epoch in range(3):
            monitor.log_epoch(epoch, base * 0.1**epoch + 1.0, labels=np.arange(128) % 4)

    def finished() -> dict[str, Any] | None:
        run = httpx.get(f"{dashboard_stack.base_url}/api/runs/{monitor.run_id}").json()
        return run if run["status"] == "succeeded" and run["verdict"] else None

    run: dict[str, Any] = wait_until(finished, 120, interval=0.5, what="its verdict")
    return run


@pytest.fixture(scope="module")
def starting_external_run(writer: httpx.Client) -> Iterator[dict[str, Any]]:
    """An external run registered by a loop that has not logged its first epoch yet."""
    response = writer.post("/api/external-runs", json={"name": "starting-loop", "config": {}})
    assert response.status_code == 201, response.text
    run: dict[str, Any] = writer.get(f"/api/runs/{response.json()['id']}").json()
    assert run["status"] == "running" and run["last_epoch"] is None, run
    yield run
    writer.post(f"/api/external-runs/{run['id']}/finish", json={"status": "succeeded"})


@pytest.fixture(scope="module")
def failed_run(dashboard_stack: ServiceStack, writer: httpx.Client) -> dict[str, Any]:
    """A run whose image folder holds no readable image: it fails on its worker."""
    for label in ("a", "b"):
        folder = dashboard_stack.data_dir / "unreadable" / label
        folder.mkdir(parents=True, exist_ok=True)
        for index in range(4):
            (folder / f"{index}.png").write_bytes(b"not a png")
    request = {**COLLAPSING_RUN, "dataset": "imagefolder", "dataset_path": "unreadable"}
    response = writer.post("/api/runs", json=request)
    assert response.status_code == 201, response.text
    run_id = response.json()["id"]

    def failed() -> dict[str, Any] | None:
        run = writer.get(f"/api/runs/{run_id}").json()
        assert run["status"] not in ("succeeded", "cancelled"), run
        return run if run["status"] == "failed" else None

    run: dict[str, Any] = wait_until(failed, 300, interval=0.5, what="the run to fail")
    return run


@pytest.fixture(scope="module")
def finished_sweep(writer: httpx.Client) -> dict[str, Any]:
    """A 2-run VICReg sweep (one cell collapses and stops early, one stays healthy) over two
    keys, one of them with one value: the two-key layout (its map) with two runs."""
    grid = {**VICREG_SWEEP["grid"], "covariance_weight": [1]}
    created = writer.post("/api/sweeps", json={**VICREG_SWEEP, "grid": grid}).json()

    def finished() -> dict[str, Any] | None:
        sweep = writer.get(f"/api/sweeps/{created['id']}").json()
        return sweep if sweep["status"] == "finished" else None

    sweep: dict[str, Any] = wait_until(finished, 300, interval=1, what="the sweep to finish")
    return sweep


@pytest.fixture
def visit(writer_context: BrowserContext, visitor_context: BrowserContext) -> Iterator[Any]:
    """``visit(url, visitor=False)``: open the page and collect what it shows wrong once it
    is drawn, :data:`PAGES_AT_ONCE` pages settling side by side; the test fails at the end
    with every problem of every page."""
    problems: dict[str, list[str]] = {}
    opened: list[tuple[str, Page, PageProblems, list[str]]] = []

    def settle_opened() -> None:
        batch = opened.copy()
        opened.clear()  # settled once, even when settling fails
        try:
            loaded = [index for index, (*_, found) in enumerate(batch) if not found]  # HTTP 200
            drawn = settled_texts([batch[index][1] for index in loaded])
            texts = dict(zip(loaded, drawn, strict=True))
            for index, (url, _, seen, found) in enumerate(batch):
                found += [f"shows {line!r}" for line in leaked_values(texts.get(index, ""))]
                found += seen.errors
                if found:
                    problems[url] = found
        finally:
            for _, page, _, _ in batch:
                page.close()

    def open_page(url: str, visitor: bool = False) -> None:
        page = (visitor_context if visitor else writer_context).new_page()
        seen = PageProblems()
        seen.watch(page)
        response = page.goto(url)
        found = []
        if response is None or response.status != 200:
            found.append(f"HTTP {response.status if response else 'no response'}")
        opened.append((url, page, seen, found))
        if len(opened) == PAGES_AT_ONCE:
            settle_opened()

    yield open_page
    settle_opened()
    report = "\n".join(f"{url}:\n  " + "\n  ".join(found) for url, found in problems.items())
    assert not problems, f"pages that show what they should not:\n{report}"


def test_every_page_of_every_kind_of_run_shows_no_leaked_value_and_no_error(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    finished_runs: list[dict[str, Any]],
    external_run: dict[str, Any],
    failed_run: dict[str, Any],
    starting_external_run: dict[str, Any],
    finished_sweep: dict[str, Any],
    visit: Any,
) -> None:
    base = dashboard_stack.base_url
    collapsed, healthy = finished_runs
    runs = [healthy, collapsed, external_run, failed_run]
    assert collapsed["verdict"]["kind"] == "complete_collapse"
    assert healthy["verdict"]["kind"] == "healthy" and not healthy["verdict"].get("stopped_early")
    ids = [run["id"] for run in runs]
    run_share = writer.post("/api/shares", json={"runs": [healthy["id"]]}).json()
    compare_share = writer.post("/api/shares", json={"runs": ids}).json()
    sweep_share = writer.post(f"/api/sweeps/{finished_sweep['id']}/share").json()

    visit(f"{base}/")
    visit(f"{base}/launch")
    for run in runs:
        visit(f"{base}/runs/{run['id']}")
        visit(f"{base}/api/runs/{run['id']}/report.html")
    visit(f"{base}/launch?from={healthy['id']}")
    visit(f"{base}/compare")
    visit(f"{base}/compare?runs={','.join(ids)}")
    visit(f"{base}/api/compare/report.html?runs={','.join(ids)}")
    # the shared slider holds the healthy run's epochs: the starting run asks for none of them
    visit(f"{base}/compare?runs={starting_external_run['id']},{healthy['id']}")
    visit(f"{base}{finished_sweep['url']}")
    visit(f"{base}/api/sweeps/{finished_sweep['id']}/report.html")
    for share in (run_share, compare_share, sweep_share):
        visit(f"{base}{share['url']}", visitor=True)


def test_a_comparison_shows_what_it_found_and_the_verdict_a_failed_run_cannot_hide(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    finished_runs: list[dict[str, Any]],
    failed_run: dict[str, Any],
    starting_external_run: dict[str, Any],
) -> None:
    """The failed run is a SimSiam-without-stop-gradient run too, newer than the collapsed
    one: their cell shows the collapsed run's verdict, the failed run beside it as "no
    verdict" (not "yet"). An id that names no run is counted apart and kept out of the
    exports' links (they were a 404). An external run with no epoch says so, not "epoch 0
    of 0"."""
    base = dashboard_stack.base_url
    collapsed = finished_runs[0]
    page = writer_context.new_page()
    try:
        page.goto(f"{base}/compare?runs={collapsed['id']},{failed_run['id']},nosuchrun")
        expect(page.locator(".page-head")).to_have_text("Compare 2 runs (1 not found)")
        csv = page.locator("a", has_text="Epochs CSV")
        assert "nosuchrun" not in str(csv.get_attribute("href"))
        assert collapsed["id"] in str(csv.get_attribute("href"))
        group = page.locator("#matrix .matrix-group", has_text="without stop-gradient")
        expect(group.locator(".matrix-cell .badge")).to_have_text("complete collapse")
        expect(group.locator(".matrix-more")).to_have_text("and 1 more: no verdict")
        # a second-axis schedule is drawn for the run that logged it, none for the other
        page.wait_for_function(
            "document.querySelectorAll('#plots .js-plotly-plot').length > 0"
            " && [...document.querySelectorAll('#plots .js-plotly-plot')]"
            ".every((p) => p.data && p.data.length > 0)"
        )
        second_axis = page.evaluate(
            """() => [...document.querySelectorAll('#plots .js-plotly-plot')].flatMap(
                (plot) => plot.data.filter((t) => t.yaxis === 'y2').map((t) => t.name))"""
        )
        assert any(collapsed["id"][:6] in name for name in second_axis), second_axis
        assert not any(failed_run["id"][:6] in name for name in second_axis), second_axis
        # the run page's z is named for every method, what it is on hover (the catalogue's)
        page.goto(f"{base}/runs/{collapsed['id']}")
        z_label = page.locator("#rep-picker label", has_text="embedding z")
        assert "projector" in str(z_label.get_attribute("title"))
        page.goto(f"{base}/runs/{starting_external_run['id']}")
        expect(page.locator("#progress .progress-line")).to_have_text("running no epoch yet")
        # its job may die before it finishes the run: the page can end it
        expect(page.locator("#cancel-button")).to_be_visible()
    finally:
        page.close()


def test_an_external_runs_configuration_is_the_config_it_was_given(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, external_run: dict[str, Any]
) -> None:
    """Its run page and its report show the researcher's config (and where the run comes
    from) as one table, a missing value as "–" at any depth; not the run record."""
    base = dashboard_stack.base_url
    page = writer_context.new_page()
    try:
        for url in (
            f"{base}/runs/{external_run['id']}",
            f"{base}/api/runs/{external_run['id']}/report.html",
        ):
            page.goto(url)
            table = page.locator("details:has(> summary:text-is('Configuration')) table")
            expect(table.locator("th")).to_have_text(["lr", "warmup", "milestones", "source"])
            values = table.locator("td")
            expect(values.nth(0)).to_have_text("0.3")
            expect(values.nth(1)).to_have_text("–")
            expect(values.nth(2)).to_have_text("[1, –, {z: 2}]")
            expect(values.nth(3)).to_contain_text('integration: "monitor"')
    finally:
        page.close()


def test_without_plotly_each_plotting_page_says_it_cannot_draw(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    finished_runs: list[dict[str, Any]],
    finished_sweep: dict[str, Any],
) -> None:
    """Plotly.js (4 MB, loaded apart) blocked, as a proxy or a dropped connection would: the
    run, compare and sweep pages still render their text and say in the plots' place why
    nothing is drawn, instead of waiting forever or throwing."""
    base = dashboard_stack.base_url
    run_id = finished_runs[1]["id"]
    pages = {
        f"{base}/runs/{run_id}": "#plots",
        f"{base}/compare?runs={run_id}": "#plots",
        f"{base}{finished_sweep['url']}": "#sweep-map",
    }
    page = writer_context.new_page()
    page.route("**/static/vendor/plotly.min.js", lambda route: route.abort())
    try:
        for url, container in pages.items():
            page.goto(url)
            alert = page.locator(f"{container} [role=alert]")
            alert.wait_for(timeout=30_000)
            assert "could not load Plotly.js" in alert.inner_text(), url
            assert "cannot be drawn" in alert.inner_text(), url
            assert page.locator(".js-plotly-plot").count() == 0, url
    finally:
        page.close()


def test_a_run_that_failed_before_its_first_epoch_promises_nothing(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    failed_run: dict[str, Any],
) -> None:
    """No "the verdict appears after the first epoch" nor empty charts waiting for data on a
    run that will never have any: one line says nothing was measured, and the list agrees."""
    page = writer_context.new_page()
    try:
        page.goto(f"{dashboard_stack.base_url}/runs/{failed_run['id']}")
        expect(page.locator("#nothing-measured")).to_contain_text("No epoch was measured")
        # not "failed epoch 0 of 5": epoch 0 is one it never measured
        expect(page.locator("#progress .progress-line")).to_have_text("failed before any epoch")
        expect(page.locator("#verdict-reason")).to_contain_text("failed before an epoch")
        expect(page.locator("#verdict-title")).to_have_text("no verdict")
        for hidden in ("#plots", "#umap-section", "#rep-picker"):
            expect(page.locator(hidden)).to_be_hidden()
        page.goto(f"{dashboard_stack.base_url}/?status=failed")
        row = page.locator(f"tr:has(a[href*='{failed_run['id']}'])")
        expect(row.locator(".badge")).to_have_text("no verdict")
    finally:
        page.close()


def test_the_keyboard_reaches_the_launch_form_past_the_presets(
    dashboard_stack: ServiceStack, writer_context: BrowserContext
) -> None:
    """Tab walked through every preset button before the first field of the form."""
    page = writer_context.new_page()
    try:
        page.goto(f"{dashboard_stack.base_url}/launch")
        page.locator("#skip-presets").focus()
        page.keyboard.press("Enter")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('#launch-form') !== null")
        assert page.evaluate("document.activeElement.matches('input, select, textarea, button')")
    finally:
        page.close()


def test_a_run_page_left_open_says_how_old_the_run_is_as_time_goes_on(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, external_run: dict[str, Any]
) -> None:
    """Its age is redrawn every half minute (Playwright's clock stands in for the wait)."""
    page = writer_context.new_page()
    try:
        page.clock.install()
        page.goto(f"{dashboard_stack.base_url}/runs/{external_run['id']}")
        subtitle = page.locator("#run-subtitle")
        expect(subtitle).to_contain_text("created ")
        before = subtitle.inner_text()
        page.clock.fast_forward("02:00:00")
        expect(subtitle).to_contain_text("h ago")
        assert subtitle.inner_text() != before
    finally:
        page.close()


def test_a_finished_runs_missing_projection_is_one_it_never_reached(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    external_run: dict[str, Any],
    starting_external_run: dict[str, Any],
) -> None:
    """On the compare page's shared slider, a later epoch than a finished run's last has no
    projection because the run ended before it, not "(yet)"; a run still running waits for
    it. A run that ended without measuring an epoch says so on its own page too."""
    base = dashboard_stack.base_url
    rng = np.random.default_rng(2)
    with Monitor(base, token=API_TOKEN, name="one-epoch-loop") as monitor:
        monitor.log_epoch(0, rng.standard_normal((64, 8)), labels=np.arange(64) % 4)
    short = str(monitor.run_id)
    wait_until(
        lambda: writer.get(f"/api/runs/{short}").json()["status"] == "succeeded",
        60,
        interval=0.5,
        what="the one-epoch run to finish",
    )
    page = writer_context.new_page()
    try:
        page.goto(f"{base}/compare?runs={short},{starting_external_run['id']},{external_run['id']}")
        # the slider follows the newest epoch: the external run's last, 2
        expect(page.locator(f".umap-cell:has([data-run-id='{short}']) .umap-empty")).to_have_text(
            "No projection for epoch 2: the run ended at epoch 0."
        )
        starting = page.locator(
            f".umap-cell:has([data-run-id='{starting_external_run['id']}']) .umap-empty"
        )
        expect(starting).to_have_text("No projection for epoch 2 (yet).")

        # an external run that finished without logging an epoch
        response = writer.post("/api/external-runs", json={"name": "empty-loop", "config": {}})
        empty = response.json()["id"]
        writer.post(f"/api/external-runs/{empty}/finish", json={"status": "succeeded"})
        page.goto(f"{base}/runs/{empty}")
        expect(page.locator("#progress .progress-line")).to_have_text(
            "succeeded with no epoch measured"
        )
    finally:
        page.close()


def test_launching_again_from_an_external_run_prefills_nothing(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, external_run: dict[str, Any]
) -> None:
    """An external run's config is the researcher's own (lr, warmup, ...), no launch config:
    the form says so and keeps its defaults instead of a form filled with stray values."""
    page = writer_context.new_page()
    try:
        page.goto(f"{dashboard_stack.base_url}/launch?from={external_run['id']}")
        expect(page.locator("#external-from-note")).to_contain_text(
            "was trained outside Collapse Lab"
        )
        expect(page.locator("#launch-form")).not_to_contain_text("Prefilled from run")
        # the form's defaults, not the external config's blanks
        expect(page.locator("#field-seed")).not_to_have_value("")
        expect(page.locator("#field-dataset")).not_to_have_value("")
    finally:
        page.close()
