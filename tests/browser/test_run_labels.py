"""Projects, tags and notes: set at registration or on the Launch form, edited with the
token, and the runs page filtering by them (server-side, the filters in the page's URL), with
10,000 runs in the store too."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import numpy as np
import pytest
from collapse_lab import Monitor
from playwright.sync_api import Browser, BrowserContext, expect
from sqlalchemy import text

from backend.store.database import Database
from bench.bench_run_list import fill
from contract.labels import MAX_NAME_CHARS, MAX_PROJECT_CHARS, MAX_TAG_CHARS
from tests.browser.conftest import API_TOKEN
from tests.service.stack import RedisServer, ServiceStack, api_only_stack, wait_until

pytestmark = pytest.mark.browser


def _register(writer: httpx.Client, name: str, project: str, tags: list[str]) -> str:
    response = writer.post(
        "/api/external-runs", json={"name": name, "project": project, "tags": tags}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_runs_pagefilters_by_project_tag_and_search(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    ids = {
        "vision-a": _register(writer, "vision-a", "labels-vision", ["lr-sweep", "resnet"]),
        "vision-b": _register(writer, "vision-b", "labels-vision", ["resnet"]),
        "audio-a": _register(writer, "audio-a", "labels-audio", ["lr-sweep"]),
    }
    edited = writer.patch(
        f"/api/runs/{ids['vision-b']}/labels", json={"note": "the one with warm-up\nmore"}
    )
    assert edited.status_code == 200 and edited.json()["note"].startswith("the one")
    assert edited.json()["tags"] == ["resnet"]  # not given: unchanged
    refused = httpx.patch(
        f"{dashboard_stack.base_url}/api/runs/{ids['vision-a']}/labels", json={"note": "x"}
    )
    assert refused.status_code == 401
    bad = writer.patch(f"/api/runs/{ids['vision-a']}/labels", json={"tags": ["no spaces"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][:2] == ["body", "tags"]

    api = writer.get("/api/runs", params={"project": "labels-vision", "tag": "lr-sweep"}).json()
    assert [run["id"] for run in api["data"]] == [ids["vision-a"]] and api["count"] == 1
    found = writer.get("/api/runs", params={"q": "WARM-UP"}).json()
    assert [run["id"] for run in found["data"]] == [ids["vision-b"]]

    page = writer_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{dashboard_stack.base_url}/?project=labels-vision")
    rows = page.locator("tr[data-run-id]")
    expect(rows).to_have_count(2)
    expect(page.locator("#filter-project")).to_have_value("labels-vision")
    expect(page.get_by_test_id("run-count")).to_have_text("1–2 of 2")
    note = page.locator(f"tr[data-run-id='{ids['vision-b']}'] .run-note")
    expect(note).to_have_text("the one with warm-up")

    page.fill("#filter-tag", "lr-sweep")
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-run-id='{ids['vision-a']}']")).to_be_visible()
    query = parse_qs(urlparse(page.url).query)
    assert query == {"project": ["labels-vision"], "tag": ["lr-sweep"]}

    # a tag chip is a link that filters by its tag alone (plus the filters already set)
    page.fill("#filter-project", "")
    expect(rows).to_have_count(2)  # lr-sweep in both projects
    page.locator(f"tr[data-run-id='{ids['audio-a']}'] .project-chip").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#filter-project")).to_have_value("labels-audio")

    page.goto(f"{dashboard_stack.base_url}/?q=nothing-matches-this")
    expect(page.get_by_text("No run matches these filters.")).to_be_visible()

    # the run page shows the labels and edits them with the token
    page.goto(f"{dashboard_stack.base_url}/runs/{ids['vision-a']}")
    expect(page.locator("#labels .project-chip")).to_have_text("labels-vision")
    page.click("#edit-labels")
    page.fill("#labels-tags", "resnet, best")
    page.fill("#labels-note", "keep this one")
    page.click("#save-labels")
    expect(page.locator("#labels .tag-chip")).to_have_text(["#resnet", "#best"])
    expect(page.locator("#run-note")).to_have_text("keep this one")
    stored = writer.get(f"/api/runs/{ids['vision-a']}").json()
    assert stored["tags"] == ["resnet", "best"] and stored["project"] == "labels-vision"
    assert errors == []


def test_a_run_launched_from_the_form_with_a_project_and_tag_is_under_that_filter(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    base = dashboard_stack.base_url
    page = writer_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{base}/launch?preset=simsiam")
    page.fill("#label-project", "launched-from-form")
    page.fill("#label-tags", "form-tag, no spaces")
    page.fill("#label-note", "typed on the Launch page")
    page.fill("#label-alerts", "http://127.0.0.1:9/form-hook")
    page.click('[data-preset="simsiam-no-stopgrad"]')  # another preset keeps what was typed
    expect(page.locator("#label-project")).to_have_value("launched-from-form")
    page.click("#launch-button")
    # the server's refusal lands under the field it names, and nothing is stored
    expect(page.locator(".field[data-label='tags'] .error")).to_contain_text("pattern")
    expect(page.locator("#launch-button")).to_have_text("Launch run")  # its label, not "Launching"
    assert writer.get("/api/runs", params={"project": "launched-from-form"}).json()["count"] == 0

    page.fill("#label-tags", "form-tag, second")
    posted = page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/runs"))
    with posted as request:
        page.click("#launch-button")
    body = request.value.post_data_json
    assert body["preset"] == "simsiam-no-stopgrad"
    assert (body["project"], body["tags"], body["note"], body["alerts"]) == (
        "launched-from-form",
        ["form-tag", "second"],
        "typed on the Launch page",
        ["http://127.0.0.1:9/form-hook"],
    )
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+"))
    found = re.search(r"/runs/([0-9a-f]+)", page.url)  # the page may add ?epoch= as it plays
    assert found is not None, page.url
    run_id = found.group(1)
    writer.post(f"/api/runs/{run_id}/cancel")  # nothing of it need train

    page.goto(f"{base}/?project=launched-from-form&tag=form-tag")
    rows = page.locator("tr[data-run-id]")
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-run-id='{run_id}'] .project-chip")).to_have_text(
        "launched-from-form"
    )
    expect(page.locator("#filter-tag")).to_have_value("form-tag")
    expect(page.get_by_test_id("run-count")).to_have_text("1–1 of 1")
    assert errors == []


@pytest.mark.slow
def test_the_runs_page_filters_10000_runs_by_project_and_tag(
    redis_server: RedisServer, tmp_path: Path, visitor_context: BrowserContext
) -> None:
    """10,000 finished runs in 20 projects with 3 of 50 tags each, written into the store as
    bench/bench_run_list.py does: the API's filtered page and total, and the runs page with
    the filters in its URL, are exactly those runs, newest first."""
    with api_only_stack(redis_server.url.rsplit("/", 1)[0] + "/7", tmp_path) as stack:
        newest_first = fill(stack.database_url, 10_000)[::-1]
        project, tag = "project-3", "tag7"
        in_project = [run["id"] for run in newest_first if run["project"] == project]
        both = [r["id"] for r in newest_first if r["project"] == project and tag in r["tags"]]
        assert 0 < len(both) < 50 < 100 < len(in_project)  # a whole page, and a deeper one
        with httpx.Client(base_url=stack.base_url, timeout=30) as api:
            assert api.get("/api/runs", params={"limit": 1}).json()["count"] == 10_000
            listed = api.get("/api/runs", params={"project": project, "tag": tag}).json()
            assert [run["id"] for run in listed["data"]] == both and listed["count"] == len(both)
            deeper = api.get(
                "/api/runs", params={"project": project, "limit": 50, "offset": 50}
            ).json()
            assert [run["id"] for run in deeper["data"]] == in_project[50:100]
            assert deeper["count"] == len(in_project)

        page = visitor_context.new_page()
        page.goto(f"{stack.base_url}/?project={project}&tag={tag}")
        rows = page.locator("tr[data-run-id]")
        expect(rows).to_have_count(len(both))
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.runId)") == both
        expect(page.locator("#filter-project")).to_have_value(project)
        expect(page.locator("#filter-tag")).to_have_value(tag)
        expect(page.get_by_test_id("run-count")).to_have_text(f"1–{len(both)} of {len(both)}")
        page.goto(f"{stack.base_url}/?project={project}&page=1")
        expect(page.get_by_test_id("run-count")).to_have_text(f"51–100 of {len(in_project)}")
        assert rows.evaluate_all("rows => rows.map(r => r.dataset.runId)") == in_project[50:100]


def test_a_form_that_undoes_its_presets_ablation_launches_the_plain_method(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    """SimSiam without stop-gradient with stop-gradient ticked back on is SimSiam: named
    so, and the compare page's expectations do not read it as the ablation."""
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/launch?preset=simsiam-no-stopgrad")
    departed = page.locator("#preset-departed")
    expect(departed).to_have_text("")
    page.check(".field[data-field='options.stop_gradient'] input")
    expect(departed).to_contain_text("stop_gradient differs from this preset's")
    posted = page.expect_request(lambda r: r.method == "POST" and r.url.endswith("/api/runs"))
    with posted as request:
        page.click("#launch-button")
    body = request.value.post_data_json
    assert "preset" not in body
    assert body["method"] == "simsiam" and "options" not in body  # the method's defaults
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]+"))
    found = re.search(r"/runs/([0-9a-f]+)", page.url)
    assert found is not None, page.url
    run = writer.post(f"/api/runs/{found.group(1)}/cancel").json()
    assert run["config"]["preset"] is None and run["config"]["options"]["stop_gradient"]


def test_a_page_past_the_end_of_the_runs_offers_the_way_back(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    run = writer.post("/api/runs", json={"preset": "simsiam", "epochs": 1}).json()
    writer.post(f"/api/runs/{run['id']}/cancel")  # a run to page through, nothing trained
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/?page=50")
    expect(page.locator(".state-empty")).to_contain_text("This page is past the last of the")
    page.get_by_role("button", name="Go to the last page").click()
    expect(page.locator("tr[data-run-id]").first).to_be_visible()


# A name Plotly would draw as a link and in bold if it were given as HTML; and a name, a
# project and a tag each as long as the API allows, with no space to break them at.
LINK_NAME = '<a href="https://example.com/phish">click</a> ext <b>bold</b>'
LONG_NAME = "n" * MAX_NAME_CHARS
LONG_PROJECT = "p" * MAX_PROJECT_CHARS
LONG_TAG = "t" * MAX_TAG_CHARS


def _logged_run(stack: ServiceStack, name: str, **labels: Any) -> str:
    """An external run of two epochs, finished, once both have their projection."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((64, 8))
    with Monitor(stack.base_url, token=API_TOKEN, name=name, **labels) as monitor:
        for epoch in range(2):
            monitor.log_epoch(epoch, base * 0.5**epoch + 1.0, labels=np.arange(64) % 4)
    run_id = str(monitor.run_id)
    url = f"{stack.base_url}/api/runs/{run_id}"
    wait_until(
        lambda: (
            httpx.get(url).json()["status"] == "succeeded"
            and {0, 1} <= set(httpx.get(f"{url}/projections").json()["epochs"])
        ),
        120,
        interval=0.5,
        what=f"run {run_id} to finish with its projections",
    )
    return run_id


@pytest.fixture(scope="module")
def user_text_runs(dashboard_stack: ServiceStack) -> dict[str, str]:
    """Two logged runs: one named with HTML, one with the longest unbroken labels."""
    return {
        "link": _logged_run(dashboard_stack, LINK_NAME),
        "long": _logged_run(
            dashboard_stack, LONG_NAME, project=LONG_PROJECT, tags=[LONG_TAG, "short"]
        ),
    }


def test_a_run_name_reaches_the_charts_as_text_never_as_html(
    dashboard_stack: ServiceStack, writer_context: BrowserContext, user_text_runs: dict[str, str]
) -> None:
    """Plotly renders a subset of HTML in legends, titles and hover text: the run named with
    a link shows no link (nor bold) in the compare page's legends and pictures, nor in the
    run's and the comparison's reports (the same chart code), but its name as written."""
    base = dashboard_stack.base_url
    ids = ",".join([user_text_runs["link"], user_text_runs["long"]])
    page = writer_context.new_page()
    try:
        for url, legend in (
            (f"{base}/compare?runs={ids}", True),
            (f"{base}/api/runs/{user_text_runs['link']}/report.html", False),
            (f"{base}/api/compare/report.html?runs={ids}", True),
        ):
            page.goto(url)
            # the name is in the charts' legends (a comparison's) and its pictures' titles
            if legend:
                shown = page.locator(".js-plotly-plot svg .legendtext", has_text=LINK_NAME)
                expect(shown.first).to_be_visible()
            expect(page.locator(".umap-plot svg .gtitle").first).to_be_visible()
            assert page.locator(".js-plotly-plot svg a").count() == 0, url
            bold = page.locator(".js-plotly-plot svg tspan[style*='bold']")
            assert bold.count() == 0, url
            # a long title is drawn in lines (broken at its spaces)
            titles = page.locator(".umap-plot .gtitle").all_text_contents()
            name = LINK_NAME.replace(" ", "")
            assert any(name in title.replace(" ", "") for title in titles), (url, titles)
    finally:
        page.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_the_longest_unbroken_labels_never_widen_the_page(
    dashboard_stack: ServiceStack,
    browser: Browser,
    user_text_runs: dict[str, str],
    width: int,
) -> None:
    """A 200-character name, a 100-character project and a 50-character tag, none with a
    space: the runs list, the run page and the comparison (its legend, its matrix, its
    address line) wrap them inside the window, on a phone and on a desktop."""
    base = dashboard_stack.base_url
    long_id, link_id = user_text_runs["long"], user_text_runs["link"]
    context = browser.new_context(viewport={"width": width, "height": 800})
    context.add_init_script(f"localStorage.setItem('collapse-lab.api-token', '{API_TOKEN}')")
    page = context.new_page()
    try:
        for url, drawn in (
            (f"{base}/?project={LONG_PROJECT}", f"tr[data-run-id='{long_id}'] .tag-chip"),
            (f"{base}/runs/{long_id}", "#labels .tag-chip"),
            (f"{base}/compare?runs={long_id},{link_id}", "#matrix .matrix-cell"),
        ):
            page.goto(url)
            expect(page.locator(drawn).first).to_be_visible()
            page.wait_for_function("document.querySelectorAll('.state-loading').length === 0")
            page.wait_for_timeout(500)  # the charts' cards and legends are laid out
            wide = page.evaluate(
                """() => [document.documentElement.scrollWidth, window.innerWidth,
                    [...document.querySelectorAll('body *')].filter((e) =>
                        e.getBoundingClientRect().right > window.innerWidth + 1)
                    .slice(0, 5).map((e) => e.tagName + '.' + e.className)]"""
            )
            assert wide[0] <= wide[1], (url, wide)
    finally:
        context.close()


def test_a_whitespace_name_falls_back_to_the_runs_and_sweeps_own_title(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    """Names of only spaces, stored before the API refused them, title nothing: the run page
    and the sweep page show the title a nameless run or sweep gets."""
    run_id = _register(writer, "to-be-blank", "blank-names", [])
    created = writer.post(
        "/api/sweeps",
        json={
            "name": "to-be-blank",
            "base": {"preset": "simsiam", "epochs": 1},
            "grid": {"lr": [0.01, 0.02]},
        },
    )
    assert created.status_code in (200, 201), created.text
    sweep = created.json()
    writer.post(f"/api/sweeps/{sweep['id']}/cancel")  # nothing of it need train
    db = Database(dashboard_stack.database_url)
    try:
        with db.write_engine.begin() as connection:
            connection.execute(text("UPDATE runs SET name = '   ' WHERE id = :id"), {"id": run_id})
            connection.execute(
                text("UPDATE sweeps SET name = '  ' WHERE id = :id"), {"id": sweep["id"]}
            )
    finally:
        db.dispose()
    page = writer_context.new_page()
    try:
        page.goto(f"{dashboard_stack.base_url}/runs/{run_id}")
        expect(page.locator("#run-title")).to_have_text(re.compile(r"\w"))
        page.goto(f"{dashboard_stack.base_url}{sweep['url']}")
        expect(page.locator("#sweep-title")).to_have_text("simsiam: lr")
    finally:
        page.close()


def test_a_refused_filter_shows_the_servers_error_and_keeps_it(
    dashboard_stack: ServiceStack, writer_context: BrowserContext
) -> None:
    """`?status=bogus` is refused (422): the page says what the server said, the list's
    "no run matches" never draws over it (not even once the method titles arrive), and the
    status filter shows the value it was given, not "all"."""
    page = writer_context.new_page()
    try:
        page.goto(f"{dashboard_stack.base_url}/?status=bogus")
        alert = page.locator("#runs .state-error")
        expect(alert).to_contain_text("status")
        expect(alert).to_contain_text("HTTP 422")
        # the method titles came (the catalogue): the table was drawn again after it
        expect(page.locator("#filter-method option")).not_to_have_count(1)
        page.wait_for_timeout(500)
        expect(alert).to_be_visible()
        expect(page.locator("#runs")).not_to_contain_text("No run")
        expect(page.locator("#filter-status option:checked")).to_have_text("bogus (unknown)")
    finally:
        page.close()


def test_a_link_with_repeated_tags_filters_by_every_one(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    """`?tag=a&tag=b` is the API's form for runs with both tags: the page lists those, shows
    both in the Tags field, and writes a typed list back the same way."""
    both = _register(writer, "tags-both", "repeated-tags", ["rt-a", "rt-b"])
    _register(writer, "tags-one", "repeated-tags", ["rt-a"])
    page = writer_context.new_page()
    try:
        page.goto(f"{dashboard_stack.base_url}/?tag=rt-a&tag=rt-b")
        rows = page.locator("tr[data-run-id]")
        expect(rows).to_have_count(1)
        expect(page.locator(f"tr[data-run-id='{both}']")).to_be_visible()
        expect(page.locator("#filter-tag")).to_have_value("rt-a, rt-b")
        page.fill("#filter-tag", "rt-a")
        expect(rows).to_have_count(2)
        page.fill("#filter-tag", "rt-b, rt-a")
        expect(rows).to_have_count(1)
        assert parse_qs(urlparse(page.url).query) == {"tag": ["rt-b", "rt-a"]}
    finally:
        page.close()
