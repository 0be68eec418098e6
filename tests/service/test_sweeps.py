"""Sweeps through real processes: a 2 x 1 VICReg map whose cells end differently, the grid
limits, the concurrency limit, cancel, exports and a read-only share link."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis

from tests.service.stack import TINY_RUN, ServiceStack, wait_until

# VICReg on tiny digits at a large learning rate: without its variance term it collapses
# to a point by epoch 3, with it (25) it stays healthy (checked with the engine).
VICREG_BASE: dict[str, Any] = {
    **{key: value for key, value in TINY_RUN.items() if key != "method"},
    "preset": "vicreg",
    "epochs": 6,
    "lr": 3.0,
}
VICREG_SWEEP = {"base": VICREG_BASE, "grid": {"variance_weight": [0, 25]}, "seeds": [0]}


@pytest.fixture
def idle(idle_stack: ServiceStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        yield client


def test_a_vicreg_variance_sweep_maps_collapse_and_health(api: httpx.Client) -> None:
    response = api.post("/api/sweeps", json=VICREG_SWEEP)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["url"] == f"/sweeps/{created['id']}" and len(created["runs"]) == 2

    def finished() -> dict[str, Any] | None:
        sweep = api.get(f"/api/sweeps/{created['id']}").json()
        return sweep if sweep["status"] == "finished" else None

    sweep = wait_until(finished, 300, interval=1, what="the sweep to finish")
    assert [a["key"] for a in sweep["axes"]] == ["variance_weight"]
    assert sweep["counts"]["succeeded"] == 2 and sweep["progress"] == 1.0
    no_variance, with_variance = sweep["cells"]
    assert no_variance["point"] == {"variance_weight": 0}
    assert with_variance["point"] == {"variance_weight": 25}
    assert no_variance["verdict_kind"] == "complete_collapse"
    assert with_variance["verdict_kind"] == "healthy"
    assert no_variance["onset_epoch"] is not None and with_variance["onset_epoch"] is None
    assert no_variance["final"]["spread"] < 0.3 < with_variance["final"]["spread"]
    assert no_variance["seeds_agree"] and with_variance["seeds_agree"]
    # Sweeps stop a settled collapse early, and say so; the healthy run trains every epoch.
    collapsed_run = no_variance["runs"][0]
    assert collapsed_run["stopped_early"] and collapsed_run["last_epoch"] < 6
    assert with_variance["runs"][0]["last_epoch"] == 6
    assert with_variance["runs"][0]["stopped_early"] is None
    # The runs are ordinary runs, with the option swept and the early stop in their config.
    run = api.get(f"/api/runs/{collapsed_run['id']}").json()
    assert run["config"]["options"]["variance_weight"] == 0
    assert run["config"]["stop_after_settled_epochs"] == 3
    assert run["verdict"]["stopped_early"].startswith("stopped early after epoch")
    assert any(s["id"] == created["id"] for s in api.get("/api/sweeps").json()["data"])

    rows = list(csv.DictReader(io.StringIO(api.get(f"/api/sweeps/{created['id']}/cells.csv").text)))
    assert [(r["variance_weight"], r["verdict"]) for r in rows] == [
        ("0", "complete_collapse"),
        ("25", "healthy"),
    ]
    # a collapsed run always has a cause (a guard, or undetermined); a healthy one none
    assert rows[0]["cause"] and rows[0]["cell_cause"] == rows[0]["cause"]
    assert rows[1]["cause"] == "" and rows[1]["cell_cause"] == ""
    exported = api.get(f"/api/sweeps/{created['id']}/cells.json").json()
    assert [r["run_id"] for r in exported] == created["runs"]
    report = api.get(f"/api/sweeps/{created['id']}/report.html")
    assert report.status_code == 200 and "renderSweepReport" in report.text
    assert created["runs"][0] in report.text  # the sweep's data is inlined


@pytest.mark.parametrize(
    ("body", "loc", "message"),
    [
        ({"grid": {"nonsense": [1, 2]}}, ["body", "grid", "nonsense"], "not a run-config field"),
        ({"grid": {"options.bogus": [1]}}, ["body", "grid", "options.bogus"], "no option"),
        ({"grid": {"variance_weight": [0, -1]}}, ["body", "grid", "variance_weight"], "-1"),
        ({"grid": {"epochs": [2, 600]}}, ["body", "grid", "epochs"], "MAX_EPOCHS"),
        (
            {"grid": {"lr": {"start": 0, "stop": 1, "steps": 3, "scale": "log"}}},
            ["body", "grid", "lr"],
            "above 0",
        ),
        (
            {"grid": {"lr": [0.1], "batch_size": [32], "epochs": [2]}},
            ["body", "grid"],
            "at most 2",
        ),
        (
            {"grid": {"lr": {"start": 0.01, "stop": 1, "steps": 50}}, "seeds": [0, 1, 2]},
            ["body", "grid"],
            "MAX_SWEEP_RUNS",
        ),
        ({"grid": {}}, ["body", "grid"], "one or two"),
        ({"base": {"preset": "nope"}}, ["body", "base"], "or a preset (simclr, byol"),
        (
            {"base": {"preset": "vicreg", "bogus": 1}},
            ["body", "base", "vicreg", "bogus"],
            "Extra inputs",
        ),
        (
            {"base": {"preset": "vicreg", "epochs": 0}},
            ["body", "base", "vicreg", "epochs"],
            "greater than",
        ),
        ({"grid": {"variance_weight": [1]}, "seeds": []}, ["body", "seeds"], "at least 1"),
        ({"seeds": [0, 0]}, ["body", "seeds"], "seeds repeat"),
        ({"seeds": [-1]}, ["body", "seeds"], "seed -1"),
        ({"name": "  \t "}, ["body", "name"], "at least 1 character"),
    ],
)
def test_bad_sweeps_get_422_naming_the_field_and_store_nothing(
    idle: httpx.Client, body: dict[str, Any], loc: list[Any], message: str
) -> None:
    before = idle.get("/api/sweeps").json()["count"]
    runs_before = idle.get("/api/runs").json()["count"]
    response = idle.post("/api/sweeps", json={**VICREG_SWEEP, **body})
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert errors[0]["loc"][: len(loc)] == loc, errors
    assert message in errors[0]["msg"], errors
    assert idle.get("/api/sweeps").json()["count"] == before
    assert idle.get("/api/runs").json()["count"] == runs_before


def test_a_sweep_sends_only_its_concurrency_and_cancel_ends_every_run(
    idle: httpx.Client, idle_stack: ServiceStack
) -> None:
    broker = redis.Redis.from_url(idle_stack.redis_url)
    train_queue = idle_stack.redis_names().broker_key("train")
    sent_before = broker.llen(train_queue)
    body = {
        **VICREG_SWEEP,
        "grid": {"variance_weight": [0, 25], "covariance_weight": [0, 1]},
        "concurrency": 2,
    }
    created = idle.post("/api/sweeps", json=body).json()
    assert len(created["runs"]) == 4
    sweep = idle.get(f"/api/sweeps/{created['id']}").json()
    assert [c["point"] for c in sweep["cells"]] == [
        {"variance_weight": 0, "covariance_weight": 0},
        {"variance_weight": 0, "covariance_weight": 1},
        {"variance_weight": 25, "covariance_weight": 0},
        {"variance_weight": 25, "covariance_weight": 1},
    ]
    assert sweep["status"] == "queued" and sweep["concurrency"] == 2
    # No worker takes them here: two went to the broker, two are held by the sweep (and
    # stay held through reaper passes, REAPER_INTERVAL_S = 1 s).
    assert broker.llen(train_queue) - sent_before == 2
    time.sleep(2.5)
    assert broker.llen(train_queue) - sent_before == 2

    cancelled = idle.post(f"/api/sweeps/{created['id']}/cancel")
    assert cancelled.status_code == 202
    assert cancelled.json()["counts"]["cancelled"] == 4
    assert cancelled.json()["status"] == "cancelled"
    for run_id in created["runs"]:
        assert idle.get(f"/api/runs/{run_id}").json()["status"] == "cancelled"
    # a sweep's run stays with its sweep: its map and counts would lose a cell
    kept = idle.delete(f"/api/runs/{created['runs'][0]}")
    assert kept.status_code == 409 and "one of a sweep's" in kept.json()["detail"]
    assert idle.get(f"/api/sweeps/{created['id']}").json()["counts"]["cancelled"] == 4
    time.sleep(1.5)
    assert broker.llen(train_queue) - sent_before == 2, "nothing more is sent once cancelled"
    again = idle.post(f"/api/sweeps/{created['id']}/cancel")
    assert again.status_code == 409 and "ended already" in again.json()["detail"]
    assert idle.post("/api/sweeps/nope/cancel").status_code == 404
    long_id = idle.get(f"/api/sweeps/{'x' * 5000}")
    assert long_id.status_code == 404 and len(long_id.json()["detail"]) < 80
    broker.close()


def test_a_sweep_share_link_reads_the_map_and_its_runs_and_nothing_else(
    private_stack: ServiceStack,
) -> None:
    owner = {"Authorization": "Bearer s3cret-token"}
    with httpx.Client(base_url=private_stack.base_url, timeout=30) as client:
        created = client.post("/api/sweeps", json=VICREG_SWEEP, headers=owner).json()
        other = client.post("/api/sweeps", json=VICREG_SWEEP, headers=owner).json()
        lone_run = client.post("/api/runs", json=TINY_RUN, headers=owner).json()
        assert client.post(f"/api/sweeps/{created['id']}/share").status_code == 401
        share = client.post(f"/api/sweeps/{created['id']}/share", headers=owner).json()
        assert share["kind"] == "sweep" and share["sweep"] == created["id"]
        assert sorted(share["runs"]) == sorted(created["runs"])
        assert client.get(f"/api/sweeps/{created['id']}").status_code == 401

        visitor = {"X-Share-Token": share["token"]}
        sweep = client.get(f"/api/sweeps/{created['id']}", headers=visitor)
        assert sweep.status_code == 200 and len(sweep.json()["cells"]) == 2
        listed = client.get("/api/sweeps", headers=visitor).json()
        assert [s["id"] for s in listed["data"]] == [created["id"]]
        for run_id in created["runs"]:
            assert client.get(f"/api/runs/{run_id}", headers=visitor).status_code == 200
        assert client.get(f"/api/sweeps/{other['id']}", headers=visitor).status_code == 404
        assert client.get(f"/api/runs/{other['runs'][0]}", headers=visitor).status_code == 404
        assert client.get(f"/api/runs/{lone_run['id']}", headers=visitor).status_code == 404
        cancel = client.post(f"/api/sweeps/{created['id']}/cancel", headers=visitor)
        assert cancel.status_code == 401
        assert client.post("/api/sweeps", json=VICREG_SWEEP, headers=visitor).status_code == 401
        run_cancel = client.post(f"/api/runs/{created['runs'][0]}/cancel", headers=visitor)
        assert run_cancel.status_code == 401
        page = client.get(f"/s/{share['token']}")
        assert page.status_code == 200 and "sweep.js" in page.text
        # The owner cleans up: nothing of these sweeps trains on a later worker.
        for sweep_id in (created["id"], other["id"]):
            assert client.post(f"/api/sweeps/{sweep_id}/cancel", headers=owner).status_code == 202
        client.post(f"/api/runs/{lone_run['id']}/cancel", headers=owner)


def test_a_sweeps_labels_go_to_each_of_its_runs(idle: httpx.Client) -> None:
    """The base's project, tags and note file every run of the sweep (the runs list finds
    them by project and tag); nothing trains (no worker)."""
    labels = {"project": "sweep-labels", "tags": ["lr-map", "tiny"], "note": "one of the map"}
    body = {"base": {**TINY_RUN, **labels}, "grid": {"lr": [0.01, 0.1]}, "seeds": [0, 1]}
    created = idle.post("/api/sweeps", json=body)
    assert created.status_code == 201, created.text
    sweep = created.json()
    try:
        listed = idle.get(
            "/api/runs", params={"project": "sweep-labels", "tag": ["lr-map", "tiny"]}
        ).json()
        assert listed["count"] == 4
        assert sorted(run["id"] for run in listed["data"]) == sorted(sweep["runs"])
        for run in listed["data"]:
            assert (run["project"], run["tags"], run["note"]) == tuple(labels.values())
            assert run["sweep_id"] == sweep["id"]
        spaced = {"project": " sweep-labels ", "tag": [" lr-map", "tiny "]}  # as typed
        assert idle.get("/api/runs", params=spaced).json()["count"] == 4
        other_tag = idle.get("/api/runs", params={"project": "sweep-labels", "tag": "nope"})
        assert other_tag.json()["count"] == 0
    finally:
        idle.post(f"/api/sweeps/{sweep['id']}/cancel")


def test_the_preview_expands_the_grids_text_as_the_sweep_would(idle: httpx.Client) -> None:
    """The Launch form sends a grid key's text as typed; the server's one grammar reads it."""
    body = {
        "base": {"preset": "vicreg"},
        "grid": {"variance_weight": "0, 5, 25", "epochs": "1..3 x5"},
        "seeds": [0, 1],
    }
    preview = idle.post("/api/sweeps/preview", json=body)
    assert preview.status_code == 200, preview.text
    expanded = preview.json()
    # an integer field's range is rounded (halves to even) and deduplicated: 1, 2, 3
    assert [a["values"] for a in expanded["axes"]] == [[0, 5, 25], [1, 2, 3]]
    assert expanded["seeds"] == [0, 1] and expanded["runs"] == 18
    log = idle.post("/api/sweeps/preview", json={**body, "grid": {"lr": "0.01..1 x3 log"}})
    assert log.json()["axes"][0]["values"] == [0.01, 0.1, 1.0]
    bad = idle.post("/api/sweeps/preview", json={**body, "grid": {"lr": "0.01..1 x1"}})
    assert bad.status_code == 422
    assert bad.json()["detail"][0]["loc"] == ["body", "grid", "lr"]
    for text in ("-..1 x3", "1e..2 x3"):  # the range's shape, its bounds no numbers
        broken = idle.post("/api/sweeps/preview", json={**body, "grid": {"lr": text}})
        assert broken.status_code == 422 and broken.json()["detail"][0]["loc"][-1] == "lr"
    no_seed = idle.post(
        "/api/sweeps/preview",
        json={**body, "base": {"preset": "vicreg", "seed": "x"}, "seeds": None},
    )
    assert no_seed.status_code == 422
    # the base is a run request: its member of the union (the method) is part of the location
    assert no_seed.json()["detail"][0]["loc"] == ["body", "base", "vicreg", "seed"]
    # the preview validates each run as the launch does: it counts none it would refuse
    refused = idle.post("/api/sweeps/preview", json={**body, "grid": {"variance_weight": "0, -1"}})
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"][0]["loc"] == ["body", "grid", "variance_weight"]
    before = idle.get("/api/sweeps").json()["count"]
    assert (
        idle.post("/api/sweeps", json={**body, "grid": {"variance_weight": "0, -1"}}).status_code
        == 422
    )
    assert idle.get("/api/sweeps").json()["count"] == before  # a preview stores nothing either


def test_the_preview_names_a_range_past_a_float_and_spells_values_as_json(
    idle: httpx.Client,
) -> None:
    """1e400 (infinity) was refused as "values repeat"; null and true were spelt None and
    True, as Python writes them, not as the request sent them."""
    cases = [
        ({"lr": "0.1..1e400x3"}, "'0.1..1e400x3': stop: Input should be a finite number"),
        ({"lr": [0.1, None]}, "value null: Input should be a valid number"),
        ({"lr": [True, False]}, "value true: Input should be a valid number"),
    ]
    for grid, message in cases:
        refused = idle.post(
            "/api/sweeps/preview", json={"base": {"preset": "vicreg"}, "grid": grid}
        )
        assert refused.status_code == 422, refused.text
        error = refused.json()["detail"][0]
        assert error["loc"] == ["body", "grid", "lr"] and error["msg"] == message, error
    as_number = (
        '{"base": {"preset": "vicreg"}, "grid": {"lr": {"start": 0.1, "stop": 1e400, "steps": 3}}}'
    )
    refused = idle.post(
        "/api/sweeps/preview", content=as_number, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 422, refused.text
    assert "finite number" in refused.json()["detail"][0]["msg"]
