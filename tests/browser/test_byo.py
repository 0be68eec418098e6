"""Bring your own method, bring your own loop, in a real Chromium: the W-MSE example plugin is
launched from the Launch page (its preset, its options rendered from its schema) and its run
page draws its plots and verdict; an external run's page shows its epochs, where it comes
from, and no launch-again button."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from collapse_lab import Monitor, wire
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import DESKTOP
from tests.service.stack import REPO, RedisServer, ServiceStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TIMEOUT_MS = 240_000
FORM_VALUES = {"train_size": 512, "probe_size": 256, "image_size": 16, "width": 8, "epochs": 4}


@pytest.fixture(scope="module")
def plugin_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    """An open stack (API, train and projection workers) with the plugin on METHOD_PLUGINS."""
    workdir: Path = tmp_path_factory.mktemp("byo-stack")
    stack = ServiceStack(
        workdir=workdir,
        redis_url=redis_server.url.rsplit("/", 1)[0] + "/6",
        database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
        extra_env={
            "PYTHONPATH": f"{REPO}:{REPO / 'examples' / 'wmse_plugin'}",
            "METHOD_PLUGINS": "wmse_plugin.spec",
        },
    )
    stack.start_api()
    stack.start_worker("byo-train", "train")
    stack.start_worker("byo-projection", "projection")
    stack.wait_for_workers(train=1, timeout=180)  # a loaded machine starts workers slowly
    yield stack
    stack.stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport=DESKTOP)
    yield context.new_page()
    context.close()


def plot_epochs(page: Page, metric: str) -> list[int]:
    return page.evaluate(
        "(id) => { const d = document.getElementById(id); return d && d.data ? d.data[0].x : [] }",
        f"plot-{metric}",
    )


def test_the_plugin_launches_from_the_form_and_shows_its_plots(
    plugin_stack: ServiceStack, page: Page
) -> None:
    page.goto(plugin_stack.base_url + "/launch")
    page.click('[data-preset="wmse-no-whitening"]')
    expect(page.locator("#field-method")).to_have_value("wmse")
    expect(page.locator("#field-options-whitening")).not_to_be_checked()
    while (closed := page.locator("details.form-section:not([open]) > summary")).count():
        closed.first.click()
    expect(page.locator("#field-options-whitening_size")).to_have_value("64")
    for name, value in FORM_VALUES.items():
        page.fill(f"#field-{name}", str(value))
    page.click("#launch-button")
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+$"))
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=TIMEOUT_MS)
    expect(page.locator("#verdict-banner")).to_have_attribute(
        "data-kind", "complete_collapse", timeout=30_000
    )
    page.wait_for_function("document.getElementById('plot-std')?.data !== undefined")
    assert plot_epochs(page, "std") == list(range(FORM_VALUES["epochs"] + 1))
    expect(page.locator("#run-title")).to_have_text("W-MSE without whitening")


def test_an_external_run_page_shows_its_epochs_and_origin(
    plugin_stack: ServiceStack, page: Page
) -> None:
    rng = np.random.default_rng(0)
    base = rng.standard_normal((128, 16))
    with Monitor(plugin_stack.base_url, name="my-own-loop", config={"lr": 0.3}) as monitor:
        for epoch in range(3):
            monitor.log_epoch(epoch, base * 0.1**epoch + 1.0, labels=np.arange(128) % 4)
    page.goto(f"{plugin_stack.base_url}/runs/{monitor.run_id}")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=120_000)
    expect(page.locator("#run-title")).to_have_text("my-own-loop")
    expect(page.locator("#run-subtitle")).to_contain_text("external:")
    expect(page.locator("#relaunch")).to_have_count(0)
    expect(page.locator("#verdict-banner")).to_have_attribute(
        "data-kind", "complete_collapse", timeout=30_000
    )
    page.wait_for_function("document.getElementById('plot-std')?.data !== undefined")
    assert plot_epochs(page, "std") == [0, 1, 2]
    expect(page.locator("#config-body")).to_contain_text("lr")
    # its report (rendered by the same page code) says where it came from, not a method
    page.goto(f"{plugin_stack.base_url}/api/runs/{monitor.run_id}/report.html")
    expect(page.locator(".report-run")).to_contain_text("external:")
    expect(page.locator(".report-run")).not_to_contain_text("external on external")


def test_an_external_run_page_names_the_epochs_it_lacks_and_shows_no_probe_images(
    plugin_stack: ServiceStack, page: Page
) -> None:
    """The client's finish names epochs it logged but could not deliver, and epochs it did
    not send (NaN): the page says so beside the verdict. A loop sends embeddings, never
    images, and its host is its Configuration's source: no probe picker, no placement."""
    api = httpx.Client(base_url=plugin_stack.base_url, timeout=30)
    run_id = api.post("/api/external-runs", json={"name": "gappy"}).json()["id"]
    z = np.random.default_rng(6).standard_normal((128, 16)).astype(np.float32)
    for epoch in (0, 2):
        response = api.put(
            f"/api/external-runs/{run_id}/epochs/{epoch}",
            content=wire.encode_epoch(epoch, {"z": z}),
            headers={"Content-Type": wire.CONTENT_TYPE},
        )
        assert response.status_code == 202
    finish = {"status": "succeeded", "epochs_dropped": [1], "epochs_skipped": [3]}
    assert api.post(f"/api/external-runs/{run_id}/finish", json=finish).status_code == 202
    api.close()
    page.goto(f"{plugin_stack.base_url}/runs/{run_id}")
    expect(page.locator("#run-status")).to_have_text("succeeded", timeout=120_000)
    expect(page.locator("#epochs-missing")).to_have_text(
        "Logged but missing here, not delivered by the client (its buffer was full, or the "
        "server refused them): epochs 1; not sent, as they held NaN or infinity: epochs 3."
    )
    page.wait_for_function("document.querySelector('.umap-plot')?.data !== undefined")
    expect(page.locator(".probe-index-input")).to_have_count(0)
    expect(page.locator("#placement")).to_be_hidden()
    # listed, it has no options of ours to call defaults
    page.goto(f"{plugin_stack.base_url}/?q=gappy")
    row = page.locator(f"tr:has(a[href*='{run_id}'])")
    expect(row.locator("td[data-label=Options]")).to_have_text("–")


def test_an_external_run_compares_with_a_plugin_run(plugin_stack: ServiceStack, page: Page) -> None:
    """Runs the two tests above left: the W-MSE run and the external one, on one set of plots."""
    runs = httpx.get(f"{plugin_stack.base_url}/api/runs", timeout=10).json()["data"]
    wmse, external = [next(r for r in runs if r["method"] == m) for m in ("wmse", "external")]
    ids = [wmse["id"], external["id"]]
    page.goto(f"{plugin_stack.base_url}/compare?runs={','.join(ids)}")
    page.wait_for_function("document.getElementById('plot-rank')?.data?.length === 2")
    names = page.evaluate("document.getElementById('plot-std').data.map((t) => t.name)")
    assert all(any(run_id[:6] in name for name in names) for run_id in ids), names
    # the matrix files the loop under its own name, not as a method "external" as published
    loops = page.locator("#matrix tr", has=page.locator("th", has_text="Own training loops"))
    expect(loops.locator(".matrix-label")).to_have_text([external["name"]])


def test_a_running_external_runs_verdict_follows_its_epochs_late_ones_included(
    plugin_stack: ServiceStack, page: Page
) -> None:
    """The page opens on a running external run that holds epochs 3 and 4 only (the part a
    requeued job uploaded): healthy so far. Epoch 0 arrives late (the synced offline part),
    where z was ten times larger: the revised verdict turns the open page's banner to
    complete collapse, and a later epoch at the old size turns it back, live."""
    api = httpx.Client(base_url=plugin_stack.base_url, timeout=30)
    run_id = api.post("/api/external-runs", json={"name": "requeued"}).json()["id"]
    z = np.random.default_rng(4).standard_normal((128, 16)).astype(np.float32)

    def upload(epoch: int, scale: float) -> None:
        body = wire.encode_epoch(epoch, {"z": z * scale})
        response = api.put(
            f"/api/external-runs/{run_id}/epochs/{epoch}",
            content=body,
            headers={"Content-Type": wire.CONTENT_TYPE},
        )
        assert response.status_code == 202

    upload(3, 0.1)
    upload(4, 0.1)
    page.goto(f"{plugin_stack.base_url}/runs/{run_id}")
    banner = page.locator("#verdict-banner")
    expect(banner).to_have_attribute("data-kind", "healthy", timeout=120_000)
    upload(0, 1.0)
    expect(banner).to_have_attribute("data-kind", "complete_collapse", timeout=120_000)
    expect(page.locator("#verdict-title")).to_contain_text("so far")
    upload(5, 1.0)
    expect(banner).to_have_attribute("data-kind", "healthy", timeout=120_000)
    api.close()
