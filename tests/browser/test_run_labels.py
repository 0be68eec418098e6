"""Projects, tags and notes: set at registration, edited with the token, and the runs page
filtering by them (server-side, the filters in the page's URL)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import BrowserContext, expect

from tests.service.stack import ServiceStack

pytestmark = pytest.mark.browser


def _register(writer: httpx.Client, name: str, project: str, tags: list[str]) -> str:
    response = writer.post(
        "/api/external-runs", json={"name": name, "project": project, "tags": tags}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_runs_page_filters_by_project_tag_and_search(
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
