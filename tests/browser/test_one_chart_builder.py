"""One chart builder for the pages and the offline report, and embedding pictures that keep one
scale, in a real Chromium against the real stack.

Named to run after test_dashboard.py: its live test needs a run slower than the page load, and
this file warms the shared worker up."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Request

from backend.store import epochs as epoch_store
from backend.store import runs as run_store
from backend.store.database import Database
from tests.browser.conftest import DESKTOP
from tests.service.stack import ServiceStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Each plot's traces as the test compares them: what a reader sees drawn.
TRACES_JS = """(sel) => Object.fromEntries([...document.querySelectorAll(sel)].map((p) =>
    [p.dataset.metric, p.data.map((t) => ({name: t.name, type: t.type || "scatter",
        x: t.x ? Array.from(t.x) : null, y: t.y ? Array.from(t.y) : null,
        z: t.z ? Array.from(t.z, (row) => Array.from(row)) : null}))]))"""

# RMS distance of the drawn points from their centroid, in screen pixels.
DRAWN_RADIUS_JS = """(p) => { const xa = p._fullLayout.xaxis, ya = p._fullLayout.yaxis;
    const points = p.data.flatMap((t) => Array.from(t.x, (x, i) => [xa.l2p(x), ya.l2p(t.y[i])]));
    const mean = (k) => points.reduce((s, q) => s + q[k], 0) / points.length;
    const [cx, cy] = [mean(0), mean(1)];
    const squares = points.reduce((s, [x, y]) => s + (x - cx) ** 2 + (y - cy) ** 2, 0);
    return Math.sqrt(squares / points.length); }"""


SHOWN_PLOTS = "#plots .plot-card:not([hidden]) .plot"


def _page_traces(page: Page, url: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The traces a dashboard page draws once every epoch of these runs is on its plots and
    the slider (which the variance shares follow) is at the last one, as the report shows."""
    page.goto(url)
    last = max(run["epochs"] for run in runs)
    page.wait_for_function(
        """([sel, lengths, last]) => { const plots = [...document.querySelectorAll(sel)];
            const rank = document.getElementById("plot-rank")?.data || [];
            const shares = document.getElementById("plot-shares")?.layout;
            return plots.every((p) => p.data && p.data.length > 0)
              && JSON.stringify(rank.map((t) => t.x.length)) === JSON.stringify(lengths)
              && document.querySelector(".epoch-output")?.textContent === `epoch ${last}`
              && shares?.title?.text?.endsWith(`epoch ${last}`); }""",
        arg=[SHOWN_PLOTS, [run["epochs"] + 1 for run in runs], last],
    )
    return page.evaluate(TRACES_JS, SHOWN_PLOTS)


def _offline_report(browser: Browser, text: str, path: Path) -> dict[str, Any]:
    """Open a downloaded report from a file with the network off: what it draws, what it asked
    for and what went wrong."""
    path.write_text(text, encoding="utf-8")
    context = browser.new_context(viewport=DESKTOP, offline=True)
    requests: list[str] = []
    errors: list[str] = []

    def on_request(request: Request) -> None:
        if not request.url.startswith("data:"):
            requests.append(request.url)

    context.on("request", on_request)
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_function(
            "document.querySelectorAll('.umap-plot').length > 0"
            " && [...document.querySelectorAll('.plot')].every((p) => p.data)"
        )
        return {
            space: page.evaluate(TRACES_JS, f'.plot[data-space="{space}"]')
            for space in ("projector", "backbone")
        } | {
            "pictures": page.eval_on_selector_all(
                ".umap-plot", "(ps) => ps.map((p) => [p.dataset.runId, p.dataset.epoch])"
            ),
            "requests": [url for url in requests if url != path.as_uri()],
            "errors": errors,
        }
    finally:
        context.close()


def _assert_same_traces(on_page: dict[str, Any], in_report: dict[str, Any]) -> None:
    assert {"std", "rank", "spectrum", "shares", "plane"} <= set(in_report)
    assert set(in_report) == set(on_page)
    for metric, traces in on_page.items():
        assert in_report[metric] == traces, metric


def test_report_draws_the_same_traces_as_the_run_page_offline(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    browser: Browser,
    finished_runs: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    run = finished_runs[0]
    page = writer_context.new_page()
    url = f"{dashboard_stack.base_url}/runs/{run['id']}"
    projector = _page_traces(page, url, [run])
    backbone = _page_traces(page, url + "?rep=backbone", [run])
    report = writer.get(f"/api/runs/{run['id']}/report.html")
    assert report.status_code == 200
    drawn = _offline_report(browser, report.text, tmp_path / "report.html")

    assert drawn["errors"] == [] and drawn["requests"] == [], "it opens offline, alone"
    _assert_same_traces(projector, drawn["projector"])
    _assert_same_traces(backbone, drawn["backbone"])
    assert drawn["pictures"] == [[run["id"], "0"], [run["id"], str(run["epochs"])]]


def test_comparison_report_draws_the_same_traces_as_the_compare_page(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    browser: Browser,
    finished_runs: list[dict[str, Any]],
    tmp_path: Path,
) -> None:
    ids = ",".join(run["id"] for run in finished_runs)
    page = writer_context.new_page()
    on_page = _page_traces(page, f"{dashboard_stack.base_url}/compare?runs={ids}", finished_runs)
    report = writer.get("/api/compare/report.html", params={"runs": ids})
    drawn = _offline_report(browser, report.text, tmp_path / "comparison.html")

    assert drawn["errors"] == [] and drawn["requests"] == []
    _assert_same_traces(on_page, drawn["projector"])
    assert len(drawn["pictures"]) == 4  # first and last epoch of each run
    # Dimensional collapse in the bars, at the last epoch: the collapsing run's backbone piles
    # its variance onto a few directions (measured: top share 0.41 against the healthy 0.18).
    # Its projector collapsed completely: shares ignore scale, and what is left of its
    # variance is only a little more concentrated (0.27 against 0.16); the spread shows it.
    shares = {
        space: [trace["y"][0] for trace in drawn[space]["shares"]]
        for space in ("projector", "backbone")
    }
    assert shares["backbone"][0] > 2 * shares["backbone"][1], shares
    assert shares["projector"][0] > shares["projector"][1], shares


# -- embedding pictures on one scale -----------------------------------------------------------

EPOCHS = 4
# RMS radius of the constructed cloud per epoch (the projection's scale: proportional to the
# spread of z/|z|): one run collapses, one stays about as wide (and drifts).
RADII = {"collapsing": [1.0, 0.5, 0.2, 0.1, 0.06], "healthy": [1.0, 0.9, 1.15, 0.95, 0.85]}


def _constructed_run(db: Database, radii: list[float], seed: int) -> str:
    """A run that no worker trains (cancelled at once) with stored clouds of these radii."""
    config = {"method": "simsiam", "dataset": "digits", "backbone": "small_cnn", "epochs": EPOCHS}
    run_id = run_store.create_run(db, config, {**config, "seed": seed, "options": {}}).id
    run_store.request_cancel(db, run_id)
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(300, 2)) / np.sqrt(2)  # unit RMS radius
    labels = [i % 10 for i in range(300)]
    for epoch, radius in enumerate(radii):
        centre = np.array([0.3 * epoch, -0.2 * epoch])
        points = base * radius + centre + rng.normal(scale=0.02 * radius, size=base.shape)
        epoch_store.record_projection(db, run_id, epoch, points.tolist(), labels)
    return run_id


@pytest.fixture(scope="module")
def constructed_runs(dashboard_stack: ServiceStack) -> Iterator[dict[str, str]]:
    db = Database(dashboard_stack.database_url)
    runs = {kind: _constructed_run(db, RADII[kind], seed) for seed, kind in enumerate(RADII)}
    yield runs
    db.dispose()


def _wait_drawn(page: Page, plot: str, epoch: int) -> None:
    page.wait_for_function(
        "([sel, e]) => document.querySelector(sel)?.layout?.title?.text?.endsWith(`epoch ${e}`)",
        arg=[plot, epoch],
    )


def _drawn_radius(page: Page, plot: str) -> float:
    return page.evaluate(DRAWN_RADIUS_JS, page.query_selector(plot))


def _played_ratio(page: Page, url: str, epochs: int) -> float:
    """Play a run page's cloud from epoch 0: its drawn RMS radius at the last epoch over its
    radius at epoch 0."""
    page.goto(url)
    assert "size = spread; shape = neighbourhoods" in page.inner_text("#umap-section")
    page.wait_for_function(
        "(n) => document.querySelector('.epoch-slider')?.max === String(n)", arg=epochs
    )
    page.click(".play-button")
    _wait_drawn(page, ".umap-plot", 0)
    first = _drawn_radius(page, ".umap-plot")
    _wait_drawn(page, ".umap-plot", epochs)
    return _drawn_radius(page, ".umap-plot") / first


def test_play_shows_a_collapsing_cloud_shrink_at_one_scale(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    constructed_runs: dict[str, str],
) -> None:
    page = writer_context.new_page()
    ratios = {
        kind: _played_ratio(page, f"{dashboard_stack.base_url}/runs/{run_id}", EPOCHS)
        for kind, run_id in constructed_runs.items()
    }
    assert ratios["collapsing"] < 1 / 3, ratios
    assert ratios["healthy"] > 1 / 2, ratios


def test_play_shrinks_the_cloud_of_a_trained_collapsing_run_only(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    finished_runs: list[dict[str, Any]],
) -> None:
    """Size = spread after real training: simsiam-no-stopgrad's drawn cloud ends under a
    third of its epoch-0 extent, simsiam's over half."""
    page = writer_context.new_page()
    collapsing, healthy = (
        _played_ratio(page, f"{dashboard_stack.base_url}/runs/{run['id']}", run["epochs"])
        for run in finished_runs
    )
    assert collapsing < 1 / 3, (collapsing, healthy)
    assert healthy > 1 / 2, (collapsing, healthy)


def test_compare_draws_the_pictures_on_one_scale(
    dashboard_stack: ServiceStack,
    writer_context: BrowserContext,
    constructed_runs: dict[str, str],
) -> None:
    ids = [constructed_runs["collapsing"], constructed_runs["healthy"]]
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/compare?runs={','.join(ids)}&epoch={EPOCHS}")
    assert "size = spread; shape = neighbourhoods" in page.inner_text("#umap-section")
    plots = [f'.umap-plot[data-run-id="{run_id}"]' for run_id in ids]
    for plot in plots:
        _wait_drawn(page, plot, EPOCHS)
    # Both views load every frame for the one scale; wait until they agree on it.
    page.wait_for_function(
        """(sels) => { const r = sels.map((s) => { const l = document.querySelector(s)._fullLayout;
            return JSON.stringify([l.xaxis.range, l.yaxis.range]); });
          return r[0] === r[1]; }""",
        arg=plots,
    )
    radii = [_drawn_radius(page, plot) for plot in plots]
    assert radii[0] < radii[1] / 3, radii  # the collapsed cloud is small beside the healthy one
