"""Input the API used to take and ignore (or take half of) is refused with a 422 naming
it: a labels edit that sets and clears the project, a zoo override no zoo sets, and a
finish call naming epochs beyond wire.MAX_EPOCH."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from collapse_lab import wire

from tests.service.stack import ServiceStack


@pytest.fixture
def idle(idle_stack: ServiceStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=idle_stack.base_url, timeout=30) as client:
        yield client


def _refused(response: httpx.Response, loc: list[Any], words: str) -> None:
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert any(d["loc"] == loc and words in d["msg"] for d in detail), detail
    assert not any("Value error" in d["msg"] for d in detail), detail  # the rule's own words


def _external_run(client: httpx.Client) -> str:
    response = client.post("/api/external-runs", json={"name": "contradictions"})
    assert response.status_code == 201, response.text
    run_id: str = response.json()["id"]
    return run_id


def test_setting_and_clearing_the_project_at_once_is_a_422(idle: httpx.Client) -> None:
    run_id = _external_run(idle)
    both = idle.patch(f"/api/runs/{run_id}/labels", json={"project": "new", "clear_project": True})
    _refused(both, ["body"], "contradict")
    assert idle.get(f"/api/runs/{run_id}").json()["project"] is None
    one = idle.patch(f"/api/runs/{run_id}/labels", json={"project": "new"})
    assert one.status_code == 200 and one.json()["project"] == "new", one.text


def test_a_zoo_override_the_zoo_does_not_set_is_a_422(idle: httpx.Client) -> None:
    before = idle.get("/api/runs").json()["count"]
    for field, value in (("method", "simclr"), ("lr", 0.5), ("options", {})):
        response = idle.post("/api/zoo", json={"presets": None, "overrides": {field: value}})
        _refused(response, ["body", "overrides", field], "does not set")
    assert idle.get("/api/runs").json()["count"] == before


def test_finish_epochs_beyond_max_epoch_are_a_422(idle: httpx.Client) -> None:
    run_id = _external_run(idle)
    finish = f"/api/external-runs/{run_id}/finish"
    too_far = wire.MAX_EPOCH + 1
    stopped = idle.post(finish, json={"status": "succeeded", "stopped_at_epoch": too_far})
    _refused(stopped, ["body", "stopped_at_epoch"], "less than or equal")
    for field in ("epochs_dropped", "epochs_skipped"):
        listed = idle.post(finish, json={"status": "succeeded", field: [1, 10**30]})
        _refused(listed, ["body", field, 1], "less than or equal")
        negative = idle.post(finish, json={"status": "succeeded", field: [-1]})
        _refused(negative, ["body", field, 0], "greater than or equal")
    done = idle.post(finish, json={"status": "succeeded", "epochs_dropped": [wire.MAX_EPOCH]})
    assert done.status_code == 202, done.text
