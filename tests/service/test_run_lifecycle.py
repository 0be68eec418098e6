"""End to end through real processes: launch over HTTP, stream, store, verdict, cancel, fail."""

from __future__ import annotations

import io
import shutil
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from contract import EpochRecord, resolve_config
from tests.service.stack import (
    TINY_RUN,
    RedisServer,
    ServiceStack,
    SseEvent,
    api_only_stack,
    collect_until,
    is_terminal_status,
    iter_sse,
    wait_until,
)
from workers.engine.data import load_splits


def test_launch_streams_epochs_that_match_the_store_and_ends_with_a_verdict(
    api: httpx.Client,
) -> None:
    response = api.post("/api/runs", json=TINY_RUN)
    assert response.status_code == 201, response.text
    run = response.json()
    assert run["status"] == "queued"
    assert run["url"] == f"/runs/{run['id']}"
    assert response.headers["location"] == f"/api/runs/{run['id']}"

    events = collect_until(api, f"/api/runs/{run['id']}/events", stop=is_terminal_status)

    ids = [e.id for e in events]
    assert ids == list(range(1, len(ids) + 1)), "event ids are 1, 2, 3... without gaps"
    statuses = [e.data["status"] for e in events if e.event == "status"]
    assert statuses[0] == "queued" and "running" in statuses and statuses[-1] == "succeeded"
    streamed = [e.data for e in events if e.event == "epoch"]
    assert [r["epoch"] for r in streamed] == [0, 1, 2, 3]

    stored = api.get(f"/api/runs/{run['id']}/epochs").json()
    assert stored == streamed
    assert [EpochRecord.model_validate(r).model_dump(mode="json") for r in stored] == stored
    assert api.get(f"/api/runs/{run['id']}/epochs", params={"since": 1}).json() == streamed[2:]

    final = api.get(f"/api/runs/{run['id']}").json()
    assert final["status"] == "succeeded"
    assert final["verdict"]["kind"] in ("healthy", "dimensional_collapse", "complete_collapse")
    assert final["verdict"]["reason"]
    assert final["last_epoch"] == 3
    assert len(final["effective_rank_history"]) == 4
    assert final["effective_rank_history"] == [r["projector"]["effective_rank"] for r in stored]

    listed = api.get("/api/runs", params={"status": "succeeded"}).json()
    assert run["id"] in [r["id"] for r in listed["data"]]
    assert listed["count"] >= 1

    # Projections arrive from the projection queue, stored and announced.
    def all_projected() -> bool:
        return api.get(f"/api/runs/{run['id']}/projections").json()["epochs"] == [0, 1, 2, 3]

    wait_until(all_projected, 240, interval=1, what="projections of epochs 0..3")
    projection = api.get(f"/api/runs/{run['id']}/projections/3").json()
    points = np.asarray(projection["points"])
    assert points.shape == (TINY_RUN["probe_size"], 2)
    assert np.isfinite(points).all()
    assert len(projection["labels"]) == TINY_RUN["probe_size"]
    # A warm projection worker may announce some (or all) projections before the run's
    # final status; the rest follow it on the resumed stream.
    announced = {e.data["epoch"] for e in events if e.event == "projection"}
    if 3 not in announced:
        tail = collect_until(
            api,
            f"/api/runs/{run['id']}/events",
            last_event_id=events[-1].id,
            stop=lambda e: e.event == "projection" and e.data["epoch"] == 3,
            timeout=30,
        )
        announced |= {e.data["epoch"] for e in tail if e.event == "projection"}
    assert announced == {0, 1, 2, 3}


def test_last_event_id_resumes_without_gap_or_duplicate(api: httpx.Client) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 4}).json()
    url = f"/api/runs/{run['id']}/events"
    first_part: list[int] = []
    for item in iter_sse(api, url):
        if isinstance(item, str) or item.id is None:
            continue
        first_part.append(item.id)
        if item.event == "epoch" and item.data["epoch"] == 1:
            break  # drop the connection mid-run
    rest = collect_until(api, url, last_event_id=first_part[-1], stop=is_terminal_status)
    seen = first_part + [e.id for e in rest]
    assert seen == list(range(1, len(seen) + 1))
    # the query parameter works too (for clients that cannot set headers)
    again = collect_until(
        api, f"{url}?last_event_id={first_part[-1]}", stop=is_terminal_status, timeout=30
    )
    assert [e.id for e in again] == [e.id for e in rest]


def test_resume_across_an_api_restart(api: httpx.Client, stack: ServiceStack) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 4}).json()
    url = f"/api/runs/{run['id']}/events"
    before: list[int] = []
    for item in iter_sse(api, url):
        if not isinstance(item, str) and item.id is not None:
            before.append(item.id)
            if item.event == "epoch":
                break
    stack.stop_api()
    time.sleep(1.0)  # the run goes on while no API is up
    stack.start_api()
    with httpx.Client(base_url=stack.base_url, timeout=30) as fresh:
        after = collect_until(fresh, url, last_event_id=before[-1], stop=is_terminal_status)
        stored = fresh.get(f"/api/runs/{run['id']}/epochs").json()
    seen = before + [e.id for e in after]
    assert seen == list(range(1, len(seen) + 1))
    assert [r["epoch"] for r in stored] == [0, 1, 2, 3, 4]


def _epoch_counts(stack: ServiceStack, run_id: str) -> dict[int, int]:
    path = stack.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(path) as connection:
        rows = connection.execute(
            "SELECT epoch, COUNT(*) FROM epochs WHERE run_id = ? GROUP BY epoch", (run_id,)
        ).fetchall()
    return dict(rows)


def test_killed_worker_is_replaced_and_the_run_resumes_each_epoch_once(
    api: httpx.Client, stack: ServiceStack
) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 6}).json()
    url = f"/api/runs/{run['id']}/events"
    collect_until(api, url, stop=lambda e: e.event == "epoch" and e.data["epoch"] == 2)
    stack.kill_training_workers()
    stack.start_worker("train-after-kill", "train")

    events = collect_until(api, url, stop=is_terminal_status, timeout=240)
    assert events[-1].data["status"] == "succeeded", events[-1].data
    statuses = [e.data for e in events if e.event == "status"]
    assert any("stopped responding" in (s["reason"] or "") for s in statuses)
    assert _epoch_counts(stack, run["id"]) == {epoch: 1 for epoch in range(7)}
    streamed = [e.data["epoch"] for e in events if e.event == "epoch"]
    assert streamed == sorted(set(streamed)), "each epoch streamed once"
    final = api.get(f"/api/runs/{run['id']}").json()
    assert final["attempts"] == 2 and final["worker_losses"] == 1


def test_redis_restart_mid_run_loses_no_epoch(
    api: httpx.Client, stack: ServiceStack, redis_server: RedisServer
) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 8}).json()
    url = f"/api/runs/{run['id']}/events"
    restarted = threading.Event()

    def outage() -> None:
        redis_server.stop()
        time.sleep(3)  # epochs are trained and stored meanwhile
        redis_server.start()
        restarted.set()

    events: list[SseEvent] = []
    outage_thread: threading.Thread | None = None
    # One viewer stays connected through the outage: the API falls back to the database.
    for item in iter_sse(api, url, timeout=240):
        if isinstance(item, str) or item.event == "progress":
            continue
        events.append(item)
        if outage_thread is None and item.event == "epoch" and item.data["epoch"] == 1:
            outage_thread = threading.Thread(target=outage)
            outage_thread.start()
        if is_terminal_status(item):
            break
    assert outage_thread is not None
    outage_thread.join(30)
    assert restarted.is_set()
    assert events[-1].data["status"] == "succeeded"
    ids = [e.id for e in events]
    assert ids == list(range(1, len(ids) + 1)), "no gap, no duplicate"
    assert _epoch_counts(stack, run["id"]) == {epoch: 1 for epoch in range(9)}
    # the worker still takes work after the restart
    follow_up = api.post("/api/runs", json={**TINY_RUN, "epochs": 1}).json()
    done = collect_until(api, f"/api/runs/{follow_up['id']}/events", stop=is_terminal_status)
    assert done[-1].data["status"] == "succeeded"


def test_a_worker_stopped_cleanly_hands_its_run_back(
    api: httpx.Client, stack: ServiceStack
) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 6}).json()
    url = f"/api/runs/{run['id']}/events"
    collect_until(api, url, stop=lambda e: e.event == "epoch" and e.data["epoch"] == 1)
    stack.kill_training_workers(signal.SIGTERM)  # warm shutdown, as on Ctrl-C
    requeued = api.get(f"/api/runs/{run['id']}").json()
    assert requeued["status"] == "queued", requeued
    # it took its key out of Redis on the way: health does not count it until the key expires
    assert api.get("/api/health").json()["workers"]["train"] == 0
    stack.start_worker("train-after-stop", "train")
    events = collect_until(api, url, stop=is_terminal_status, timeout=240)
    assert events[-1].data["status"] == "succeeded"
    final = api.get(f"/api/runs/{run['id']}").json()
    assert final["worker_losses"] == 0 and final["attempts"] == 2
    assert _epoch_counts(stack, run["id"]) == {epoch: 1 for epoch in range(7)}


def test_a_projection_worker_stopped_while_it_compiles_umap_does_not_wait_for_it(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # numba's cache in an empty folder: the worker's warm-up compiles UMAP's kernels (15 s
    # alone on this machine, a minute when loaded), and a SIGTERM must not wait for it
    with api_only_stack(redis_server.url.replace("/0", "/3"), tmp_path) as cold:
        worker = cold.start_worker(
            "cold-projection", "projection", env={"NUMBA_CACHE_DIR": str(tmp_path / "numba")}
        )
        log = tmp_path / "worker-cold-projection.log"
        wait_until(lambda: " ready." in log.read_text(errors="replace"), 120, what="ready")
        worker.terminate()
        assert worker.wait(60) == 0
        printed = log.read_text(errors="replace")
        assert "projection warmed up" not in printed
        assert "exiting without waiting" in printed


def test_cancel_mid_epoch_stops_within_seconds_and_keeps_the_epochs(api: httpx.Client) -> None:
    slow = {**TINY_RUN, "epochs": 50, "train_size": 1024, "batch_size": 16}
    run = api.post("/api/runs", json=slow).json()
    url = f"/api/runs/{run['id']}/events"
    for item in iter_sse(api, url):
        if isinstance(item, str) or item.event != "progress":
            continue
        if item.data["epoch"] >= 1 and item.data["step"] >= 2:
            break
    requested = time.monotonic()
    response = api.post(f"/api/runs/{run['id']}/cancel")
    assert response.status_code == 202
    events = collect_until(api, url, stop=is_terminal_status, timeout=60)
    assert events[-1].data["status"] == "cancelled"
    assert time.monotonic() - requested < 10
    kept = api.get(f"/api/runs/{run['id']}/epochs").json()
    assert kept and kept[0]["epoch"] == 0
    assert api.post(f"/api/runs/{run['id']}/cancel").status_code == 409


def test_a_dataset_folder_that_vanished_fails_the_run_with_its_reason(
    api: httpx.Client, stack: ServiceStack
) -> None:
    folder = stack.data_dir / "vanishing"
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / label).mkdir(parents=True, exist_ok=True)
        for index in range(40):
            pixels = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{index}.png")
    # Hold the run in the queue (no train worker) while the folder disappears.
    stack.kill_training_workers(signal.SIGTERM)
    request = {**TINY_RUN, "dataset": "imagefolder", "dataset_path": "vanishing"}
    response = api.post("/api/runs", json=request)
    assert response.status_code == 201, response.text
    shutil.rmtree(folder)
    stack.start_worker("train-after-vanish", "train")
    run_id = response.json()["id"]
    events = collect_until(api, f"/api/runs/{run_id}/events", stop=is_terminal_status)
    assert events[-1].data["status"] == "failed"
    error = events[-1].data["error"]
    assert "vanishing" in error, error
    assert api.get(f"/api/runs/{run_id}").json()["error"] == error


@pytest.mark.slow
def test_a_run_that_keeps_killing_its_worker_ends_failed_not_in_a_loop(
    api: httpx.Client, stack: ServiceStack
) -> None:
    run = api.post("/api/runs", json={**TINY_RUN, "epochs": 200}).json()
    for death in range(1, 4):

        def running_on_a_worker(attempt: int = death) -> bool:
            detail = api.get(f"/api/runs/{run['id']}").json()
            return detail["status"] == "running" and detail["attempts"] == attempt

        wait_until(running_on_a_worker, 120, what=f"attempt {death}")
        stack.kill_training_workers()  # as if the run crashed its worker (the OOM killer)
        stack.start_worker(f"train-death-{death}", "train")

    def ended() -> bool:
        return api.get(f"/api/runs/{run['id']}").json()["status"] == "failed"

    wait_until(ended, 60, what="the run to fail")
    final = api.get(f"/api/runs/{run['id']}").json()
    assert final["worker_losses"] == 3 and final["attempts"] == 3
    assert "stopped responding 3 times" in final["error"]
    events = collect_until(
        api, f"/api/runs/{run['id']}/events", stop=is_terminal_status, timeout=30
    )
    assert events[-1].data["error"] == final["error"]


def test_a_second_api_process_serves_the_same_live_stream(
    api: httpx.Client, stack: ServiceStack
) -> None:
    second = ServiceStack(
        workdir=stack.workdir / "second-api",
        redis_url=stack.redis_url,
        database_url=stack.database_url,
    )
    second.start_api()
    try:
        run = api.post("/api/runs", json={**TINY_RUN, "epochs": 2}).json()
        with httpx.Client(base_url=second.base_url, timeout=30) as other:
            events = collect_until(other, f"/api/runs/{run['id']}/events", stop=is_terminal_status)
        assert events[-1].data["status"] == "succeeded"
        assert [e.id for e in events] == list(range(1, len(events) + 1))
        assert [e.data for e in events if e.event == "epoch"] == api.get(
            f"/api/runs/{run['id']}/epochs"
        ).json()
    finally:
        second.stop()


def test_probe_thumbnail_is_the_runs_probe_image(api: httpx.Client, tmp_path: Any) -> None:
    run_id = api.post("/api/runs", json=TINY_RUN).json()["id"]
    # the worker writes the probe images when it starts training the run
    response = wait_until(
        lambda: (r := api.get(f"/api/runs/{run_id}/probe/3.png")).status_code == 200 and r,
        timeout=90,
        what="the probe images",
    )
    assert response.headers["content-type"] == "image/png"
    served = np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))
    _, probe = load_splits(resolve_config(TINY_RUN), data_root=tmp_path, download=False)
    factor = served.shape[0] // probe.images.shape[-1]
    expected = probe.images[3].permute(1, 2, 0).numpy()
    expected = np.repeat(np.repeat(expected, factor, 0), factor, 1)
    assert served.shape == expected.shape and served.shape[0] >= 96
    assert np.array_equal(served, expected)
    assert api.get(f"/api/runs/{run_id}/probe/{len(probe)}.png").status_code == 404
    assert api.get("/api/runs/nope/probe/0.png").status_code == 404
