"""Request handling without training: validation, limits, auth, shares, pages, reports."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from backend.schemas import RunEpochsExport
from backend.store import epochs as epoch_store
from backend.store.database import Database
from contract import EpochRecord, RunConfig
from tests.service.stack import TINY_RUN, ServiceStack, iter_sse
from workers.cli import main as cli_main
from workers.cli import parse_flag_value


@pytest.fixture
def idle(idle_stack: ServiceStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        yield client


MALFORMED: list[tuple[Any, list[Any], str]] = [
    (
        {"method": "simsiam", "epochs": 0},
        ["body", "simsiam", "epochs"],
        "greater than or equal to 1",
    ),
    ({"method": "simsiam", "epochs": 100000}, ["body", "simsiam", "epochs"], "less than or equal"),
    ({"method": "simsiam", "epochs": 600}, ["body", "simsiam", "epochs"], "MAX_EPOCHS"),
    ({"method": "simsiam", "batch_size": 3}, ["body", "simsiam", "batch_size"], "greater than"),
    (
        {"method": "simsiam", "probe_size": 15000},
        ["body", "simsiam", "probe_size"],
        "MAX_PROBE_SIZE",
    ),
    ({"method": "nope"}, ["body"], "choose a method (barlow_twins, byol"),
    ({"preset": "nope"}, ["body"], "or a preset (simclr, byol"),
    ({"dataset": "digits"}, ["body"], "give a JSON object with a method"),
    ({"preset": "simsiam", "method": "byol"}, ["body", "byol", "preset"], "'byol-no-ema'"),
    (
        {"method": "simsiam", "bogus": 1},
        ["body", "simsiam", "bogus"],
        "Extra inputs are not permitted",
    ),
    (
        {"method": "simsiam", "dataset": "mnist"},
        ["body", "simsiam", "dataset"],
        "unknown dataset",
    ),
    ({"method": "simsiam", "lr": "fast"}, ["body", "simsiam", "lr"], "valid number"),
    (
        {"method": "simsiam", "options": {"stop_gradient": "maybe"}},
        ["body", "simsiam", "options", "stop_gradient"],
        "valid boolean",
    ),
    (
        {"method": "simsiam", "options": {"temperature": 0.1}},
        ["body", "simsiam", "options", "temperature"],
        "Extra inputs",
    ),
    (
        {"method": "simsiam", "dataset": "imagefolder"},
        ["body", "simsiam", "dataset_path"],
        "needs dataset_path",
    ),
    (
        {"method": "simsiam", "dataset": "imagefolder", "dataset_path": "../etc"},
        ["body", "simsiam", "dataset_path"],
        "..",
    ),
    (
        {"method": "simsiam", "dataset": "imagefolder", "dataset_path": "/etc"},
        ["body", "simsiam", "dataset_path"],
        "relative",
    ),
    (
        {"method": "simsiam", "dataset": "imagefolder", "dataset_path": "absent"},
        ["body", "simsiam", "dataset_path"],
        "no folder",
    ),
    ([1, 2, 3], ["body"], "give a JSON object"),
    ("just a string", ["body"], "give a JSON object"),
]


@pytest.mark.parametrize(("body", "loc", "message"), MALFORMED)
def test_malformed_run_requests_get_a_422_naming_the_field(
    idle: httpx.Client, body: Any, loc: list[Any], message: str
) -> None:
    before = idle.get("/api/runs").json()["count"]
    response = idle.post("/api/runs", json=body)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and message in d["msg"] for d in detail), detail
    assert idle.get("/api/runs").json()["count"] == before, "nothing was queued"


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--epochs", "0"), ("--lr", "fast"), ("--dataset", "mnist"), ("--image-size", "12.5")],
)
def test_the_command_line_refuses_a_bad_value_with_the_api_message(
    idle: httpx.Client, flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    field = flag.removeprefix("--").replace("-", "_")
    assert cli_main(["train", "--method", "simsiam", flag, value]) == 2
    refused_by_cli = capsys.readouterr().err.strip()
    body = {"method": "simsiam", field: parse_flag_value(RunConfig.model_fields[field], value)}
    response = idle.post("/api/runs", json=body)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "simsiam", field]
    assert refused_by_cli == f"collapse-lab: error: simsiam.{field}: {error['msg']}"


def test_invalid_json_is_a_422(idle: httpx.Client) -> None:
    response = idle.post(
        "/api/runs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_a_preset_with_overrides_resolves_and_is_queued(idle: httpx.Client) -> None:
    response = idle.post("/api/runs", json={"preset": "simsiam-no-stopgrad", "epochs": 2})
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["preset"] == "simsiam-no-stopgrad"
    assert run["config"]["options"]["stop_gradient"] is False
    assert run["config"]["epochs"] == 2
    assert run["status"] == "queued"


def test_zoo_launches_every_preset(idle: httpx.Client) -> None:
    methods = idle.get("/api/methods").json()
    response = idle.post("/api/zoo", json={"overrides": {"epochs": 1, "dataset": "shapes"}})
    assert response.status_code == 201, response.text
    zoo = response.json()
    assert zoo["count"] == len(methods["presets"])
    assert {r["preset"] for r in zoo["data"]} == {p["name"] for p in methods["presets"]}
    assert zoo["compare_url"].startswith("/compare?runs=")
    bad = idle.post("/api/zoo", json={"overrides": {"epochs": 0}})
    assert bad.status_code == 422


def test_methods_catalogue_lists_options_schemas_and_presets(idle: httpx.Client) -> None:
    catalogue = idle.get("/api/methods").json()
    names = {m["name"] for m in catalogue["methods"]}
    assert {"simclr", "byol", "simsiam", "swav", "deepcluster", "barlow_twins", "vicreg"} <= names
    simsiam = next(m for m in catalogue["methods"] if m["name"] == "simsiam")
    assert "stop_gradient" in simsiam["options_schema"]["properties"]
    assert simsiam["options_defaults"]["stop_gradient"] is True
    preset = next(p for p in catalogue["presets"] if p["name"] == "simsiam-no-stopgrad")
    assert preset["expected"] == "complete_collapse"
    assert catalogue["limits"]["epochs"] == 500


def test_health_reports_each_part(idle: httpx.Client) -> None:
    health = idle.get("/api/health").json()
    assert health["database"]["ok"] and health["redis"]["ok"]
    assert health["workers"]["train"] == 0 and health["status"] == "degraded"


def test_list_pagination_and_filters_are_validated(idle: httpx.Client) -> None:
    assert idle.get("/api/runs", params={"limit": 0}).status_code == 422
    assert idle.get("/api/runs", params={"status": "exploded"}).status_code == 422
    bogus_cause = idle.get("/api/runs", params={"cause": "bogus"})
    assert bogus_cause.status_code == 422
    assert bogus_cause.json()["detail"][0]["loc"] == ["query", "cause"]
    assert idle.get("/api/runs", params={"cause": "centering"}).status_code == 200
    run = idle.post("/api/runs", json=TINY_RUN).json()
    idle.post(f"/api/runs/{run['id']}/cancel")  # a run to list, nothing trained
    every = idle.get("/api/runs").json()["count"]
    assert idle.get("/api/runs", params={"tag": "", "project": ""}).json()["count"] == every
    assert idle.get("/api/runs/doesnotexist").status_code == 404
    assert idle.get("/api/runs/doesnotexist/events").status_code == 404


def test_queued_run_cancels_at_once_and_can_be_deleted(idle: httpx.Client) -> None:
    run = idle.post("/api/runs", json=TINY_RUN).json()
    assert idle.delete(f"/api/runs/{run['id']}").status_code == 409
    cancelled = idle.post(f"/api/runs/{run['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"
    assert idle.delete(f"/api/runs/{run['id']}").status_code == 204
    assert idle.get(f"/api/runs/{run['id']}").status_code == 404


def test_head_answers_as_get_without_a_body_and_405_names_every_method(
    idle: httpx.Client,
) -> None:
    run_id = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    for path in ("/", f"/runs/{run_id}", "/api/health", f"/api/runs/{run_id}", "/api/runs"):
        got, head = idle.get(path), idle.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == got.headers["content-type"]
    assert idle.head("/api/runs/nope").status_code == 404
    # an event stream answers its headers and ends (a GET would stay open)
    stream = idle.head(f"/api/runs/{run_id}/events", timeout=10)
    assert stream.status_code == 200 and "text/event-stream" in stream.headers["content-type"]
    for path, allowed in (("/api/runs", "GET, HEAD, POST"), ("/api/health", "GET, HEAD")):
        refused = idle.request("PUT", path)
        assert refused.status_code == 405 and refused.headers["allow"] == allowed, path
    assert idle.options("/api/runs").headers["allow"] == "GET, HEAD, POST"


def test_run_list_stream_announces_new_runs(idle: httpx.Client) -> None:
    stream = iter_sse(idle, "/api/events", timeout=30)
    assert next(stream) == "keep-alive", "the stream is open (and idle) before the launch"
    created = idle.post("/api/runs", json=TINY_RUN).json()
    for item in stream:
        if isinstance(item, str):
            continue
        if item.event == "status" and item.data["run_id"] == created["id"]:
            assert item.data["data"]["status"] == "queued"
            assert item.id is not None
            break
    stream.close()


def test_keep_alives_arrive_on_an_idle_stream(idle: httpx.Client) -> None:
    run = idle.post("/api/runs", json=TINY_RUN).json()
    comments = []
    for item in iter_sse(idle, f"/api/runs/{run['id']}/events", timeout=30):
        if isinstance(item, str):
            comments.append(item)
            break
    assert comments == ["keep-alive"]


def test_api_docs_pages_load_only_local_assets(idle: httpx.Client) -> None:
    """/docs and /redoc must work without network: every script, stylesheet and icon they
    reference is served by this server."""
    for page in ("/docs", "/redoc"):
        html = idle.get(page)
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert any(a.endswith(".js") for a in assets), assets
        for asset in assets:
            assert asset.startswith("/") and not asset.startswith("//"), (page, asset)
            served = idle.get(asset)
            assert served.status_code == 200 and len(served.content) > 100, asset
    assert "SwaggerUIBundle" in idle.get("/static-offline-docs/swagger-ui-bundle.js").text
    assert idle.get("/openapi.json").json()["info"]["title"] == "Collapse Lab"


def test_pages_and_vendored_plotly_are_served(idle: httpx.Client) -> None:
    plotly_js = idle.get("/static/vendor/plotly.min.js")
    assert plotly_js.status_code == 200 and len(plotly_js.content) > 1_000_000
    for path in ("/", "/launch", "/runs/abc", "/compare"):
        response = idle.get(path)
        assert response.status_code in (200, 503), path
        assert response.headers["content-type"].startswith("text/html")


def report_data(page: str) -> dict[str, Any]:
    """The run data a report inlines for its charts."""
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page)
    assert found, "the report carries its data"
    return json.loads(found.group(1))


def external_references(page: str) -> list[str]:
    """Addresses the report (markup, stylesheet and every inlined module, decoded) would load
    from elsewhere; plotly.js is left out: its source names URLs it never fetches."""
    texts = [re.sub(r"<script>.*?</script>", "", page, count=1, flags=re.S)]
    found = []
    while texts:
        text = texts.pop()
        texts.extend(
            base64.b64decode(encoded).decode()
            for encoded in re.findall(r"data:text/javascript;base64,([A-Za-z0-9+/=]+)", text)
        )
        found += re.findall(r"(?:https?:)?//[\w.-]+\.[a-z]{2,}\b[^\s\"'<>)]*", text)
    return found


def test_reports_and_exports_of_a_run(idle: httpx.Client, idle_stack: ServiceStack) -> None:
    run = idle.post("/api/runs", json=TINY_RUN).json()
    db = Database(idle_stack.database_url)
    for epoch in range(3):
        metrics = {
            "dim": 32,
            "std_l2": 0.09,
            "std_l2_sqrt_d": 0.5,
            "effective_rank": 5.0 + epoch,
            "spectrum": [0.0, -1.0, -2.0],
            "alignment": 0.1,
            "uniformity": -2.0,
            "cos_pos": 0.9,
            "cos_rand": 0.1,
            "knn_top1": 0.5,
        }
        record = EpochRecord.model_validate(
            {
                "epoch": epoch,
                "loss": None if epoch == 0 else 1.0 / epoch,
                "lr": 0.05,
                "ema_momentum": None,
                "logs": {},
                "backbone": metrics,
                "projector": metrics,
                "verdict": {"kind": "healthy", "onset_epoch": None, "reason": "spread"},
            }
        )
        epoch_store.record_epoch(db, run["id"], record)
    epoch_store.record_projection(db, run["id"], 2, [[0.0, 0.0], [1.0, 1.0]], [0, 1])
    db.dispose()

    report = idle.get(f"/api/runs/{run['id']}/report.html")
    assert report.status_code == 200
    assert "<script src=" not in report.text, "self-contained: nothing fetched"
    assert "plotly" in report.text.lower() and run["id"] in report.text
    csv_text = idle.get(f"/api/runs/{run['id']}/epochs.csv").text
    header, *rows = csv_text.strip().splitlines()
    assert "projector.effective_rank" in header.split(",") and len(rows) == 3
    exported = idle.get(f"/api/runs/{run['id']}/epochs.json").json()
    assert [r["epoch"] for r in exported["epochs"]] == [0, 1, 2]
    assert RunEpochsExport.model_validate(exported).run.id == run["id"]  # as documented
    # The report's charts are drawn in the browser by the pages' chart code (see
    # tests/browser): here, that the data they draw from is inline and nothing is fetched.
    inline = report_data(report.text)
    assert [r["epoch"] for r in inline["runs"][0]["records"]] == [0, 1, 2]
    assert [p["epoch"] for p in inline["runs"][0]["projections"]] == [2]
    assert external_references(report.text) == []
    other = idle.post("/api/runs", json=TINY_RUN).json()
    compare = idle.get("/api/compare/report.html", params={"runs": f"{run['id']},{other['id']}"})
    assert compare.status_code == 200 and other["id"] in compare.text
    compare_csv = idle.get("/api/compare/epochs.csv", params={"runs": run["id"]}).text
    assert compare_csv.splitlines()[0].startswith("run_id,")
    assert idle.get("/api/compare/report.html", params={"runs": "nope"}).status_code == 404


# -- write protection, private mode, share links ---------------------------------------------

TOKEN = {"Authorization": "Bearer s3cret-token"}


@pytest.fixture
def private(private_stack: ServiceStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=private_stack.base_url, timeout=30) as client:
        yield client


def test_writes_need_the_token(private: httpx.Client) -> None:
    assert private.post("/api/runs", json=TINY_RUN).status_code == 401
    wrong = {"Authorization": "Bearer wrong"}
    assert private.post("/api/runs", json=TINY_RUN, headers=wrong).status_code == 401
    created = private.post("/api/runs", json=TINY_RUN, headers=TOKEN)
    assert created.status_code == 201
    run_id = created.json()["id"]
    assert private.post(f"/api/runs/{run_id}/cancel").status_code == 401
    assert private.post(f"/api/runs/{run_id}/cancel", headers=TOKEN).status_code == 202
    port = private.base_url.port
    with httpx.Client(base_url=str(private.base_url), timeout=30) as browser:
        browser.cookies.set("collapse_lab_token", "s3cret-token")  # another port's, or none
        assert browser.get("/api/runs").status_code == 401
        browser.cookies.set(f"collapse_lab_token_{port}", "s3cret-token")
        assert browser.get("/api/runs").status_code == 200


def test_private_mode_hides_runs_without_the_token(private: httpx.Client) -> None:
    assert private.get("/api/runs").status_code == 401
    assert private.get("/api/runs", headers=TOKEN).status_code == 200
    assert private.get("/api/health").status_code == 200


def test_a_share_link_reads_its_run_only_and_can_be_revoked(private: httpx.Client) -> None:
    shared = private.post("/api/runs", json=TINY_RUN, headers=TOKEN).json()["id"]
    hidden = private.post("/api/runs", json=TINY_RUN, headers=TOKEN).json()["id"]
    assert private.post("/api/shares", json={"runs": [shared]}).status_code == 401
    share = private.post("/api/shares", json={"runs": [shared]}, headers=TOKEN).json()
    assert share["kind"] == "run" and share["url"] == f"/s/{share['token']}"

    with httpx.Client(base_url=str(private.base_url), timeout=30) as visitor:
        page = visitor.get(share["url"])
        assert page.status_code in (200, 503)
        assert visitor.cookies.get("collapse_lab_share") == share["token"]
        assert visitor.get(f"/api/shares/{share['token']}").json()["runs"] == [shared]
        assert visitor.get(f"/api/runs/{shared}").status_code == 200
        assert visitor.get(f"/api/runs/{shared}/epochs").status_code == 200
        assert visitor.get(f"/api/runs/{hidden}").status_code == 404
        listed = visitor.get("/api/runs").json()
        assert [r["id"] for r in listed["data"]] == [shared]
        assert visitor.post("/api/runs", json=TINY_RUN).status_code == 401
        assert visitor.post(f"/api/runs/{shared}/cancel").status_code == 401
        assert visitor.delete(f"/api/shares/{share['token']}").status_code == 401

        assert private.delete(f"/api/shares/{share['token']}", headers=TOKEN).status_code == 204
        assert visitor.get(f"/api/runs/{shared}").status_code == 401
        gone = visitor.get(share["url"])  # a page for the browser that opened the link
        assert gone.status_code == 404 and gone.headers["content-type"].startswith("text/html")
        assert "No such share link" in gone.text


def test_probe_thumbnail_waits_for_the_worker_that_trains_the_run(idle: httpx.Client) -> None:
    run_id = idle.post("/api/runs", json=TINY_RUN).json()["id"]
    response = idle.get(f"/api/runs/{run_id}/probe/3.png")
    assert response.status_code == 409  # no worker has started it: no probe images yet
    assert "probe images" in response.json()["detail"]
    assert idle.get("/api/runs/nope/probe/0.png").status_code == 404
