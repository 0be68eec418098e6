"""The runs list with 10,000 runs in the store: the filtered API page and the runs page.

Setting: a real redis-server and uvicorn API on a SQLite file (no workers), whose store is
filled with ``--runs`` finished runs (20 projects, 50 tags, 3 tags each, 10 epochs each
with their effective rank) written straight into the database before the API starts.
Reported:

* ``GET /api/runs?project=&tag=&limit=50`` (and with ``q=``, and the unfiltered first page):
  p50 and p95 over ``--requests`` requests, each with another offset or project so none is a
  cache hit (target: p95 <= 50 ms);
* the runs page in Debian's headless Chromium: first contentful paint and table drawn for
  ``/`` and for a filtered link, and the time from typing a project in the filter to the
  table showing only that project's runs.

Run from the repository root: ``python -m bench.bench_run_list [--runs 10000]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from typing import Any

import httpx
from playwright.sync_api import sync_playwright
from sqlalchemy import insert

from backend.store.database import Database
from backend.store.models import EpochRow, Run, RunTag
from bench.local_stack import local_stack
from contract import VERDICT_KINDS
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP

PROJECTS = [f"project-{i}" for i in range(20)]
TAGS = [f"tag{i}" for i in range(50)]


def fill(database_url: str, runs: int, seed: int = 0) -> list[dict[str, Any]]:
    """``runs`` finished runs with labels, verdicts and 10 epochs each, in bulk; returns the
    runs' rows as written (oldest first)."""
    rng = random.Random(seed)
    db = Database(database_url)
    db.migrate()
    start = time.time() - runs
    run_rows: list[dict[str, Any]] = []
    tag_rows: list[dict[str, Any]] = []
    epoch_rows: list[dict[str, Any]] = []
    for i in range(runs):
        run_id = uuid.uuid4().hex[:12]
        kind = rng.choice(VERDICT_KINDS)
        tags = rng.sample(TAGS, 3)
        stamp = start + i
        run_rows.append(
            {
                "id": run_id,
                "created_at": stamp,
                "updated_at": stamp,
                "status": "succeeded",
                "method": "simsiam",
                "preset": "simsiam",
                "dataset": "digits",
                "request": {"preset": "simsiam"},
                "config": {"method": "simsiam", "dataset": "digits", "proj_dim": 64},
                "epochs_total": 10,
                "last_epoch": 9,
                "verdict": {"kind": kind, "onset_epoch": None, "reason": "bench"},
                "verdict_kind": kind,
                "attempts": 1,
                "worker_losses": 0,
                "cancel_requested": False,
                "last_event_seq": 0,
                "name": f"run {i}",
                "project": rng.choice(PROJECTS),
                "tags": tags,
                "note": f"lr sweep {rng.random():.3f}",
            }
        )
        tag_rows += [{"run_id": run_id, "tag": tag} for tag in tags]
        epoch_rows += [
            {
                "run_id": run_id,
                "epoch": epoch,
                "record": {"epoch": epoch},
                "effective_rank": 30.0 - epoch,
                "created_at": stamp,
            }
            for epoch in range(10)
        ]
    with db.write() as session:
        for model, rows in ((Run, run_rows), (RunTag, tag_rows), (EpochRow, epoch_rows)):
            for chunk in range(0, len(rows), 5000):
                session.execute(insert(model), rows[chunk : chunk + 5000])
    db.dispose()
    return run_rows


def api_latency(base_url: str, requests: int) -> dict[str, list[float]]:
    """Milliseconds per request for three kinds of list query, none answered from cache."""
    timings: dict[str, list[float]] = {"project+tag": [], "project+tag+q": [], "first page": []}
    rng = random.Random(1)
    with httpx.Client(base_url=base_url, timeout=30) as client:
        for i in range(requests):
            queries = {
                "project+tag": {"project": rng.choice(PROJECTS), "tag": rng.choice(TAGS)},
                "project+tag+q": {
                    "project": rng.choice(PROJECTS),
                    "tag": rng.choice(TAGS),
                    "q": f"0.{rng.randrange(10)}",
                },
                "first page": {"offset": str(i % 40)},
            }
            for name, params in queries.items():
                started = time.perf_counter()
                response = client.get("/api/runs", params={**params, "limit": "50"})
                timings[name].append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
    return timings


def page_timings(base_url: str, repeat: int) -> dict[str, list[float]]:
    """Milliseconds: paint and table drawn for / and a filtered link; a filter change."""
    drawn = "document.querySelectorAll('tr[data-run-id]').length === 50"
    results: dict[str, list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for _ in range(repeat):
            for name, path in (("/", "/"), ("filtered link", "/?project=project-3&tag=tag7")):
                context = browser.new_context(viewport=DESKTOP)
                page = context.new_page()
                page.goto(base_url + path)
                ready = "document.querySelector('tr[data-run-id]') !== null"
                page.wait_for_function(ready if path != "/" else drawn, timeout=60_000)
                results.setdefault(f"{name}: table drawn", []).append(
                    page.evaluate("performance.now()")
                )
                paint = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime"
                )
                if paint is not None:
                    results.setdefault(f"{name}: first paint", []).append(paint)
                if path == "/":
                    project = "project-11"
                    started = page.evaluate("performance.now()")
                    page.fill("#filter-project", project)
                    page.wait_for_function(
                        "p => [...document.querySelectorAll('.project-chip')].length > 0 && "
                        "[...document.querySelectorAll('.project-chip')].every("
                        "c => c.textContent === p)",
                        arg=project,
                        timeout=60_000,
                    )
                    results.setdefault("filter change (typed)", []).append(
                        page.evaluate("performance.now()") - started
                    )
                context.close()
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_stack(workers=False) as stack:
        started = time.perf_counter()
        fill(stack.database_url, args.runs)
        print(f"filled the store with {args.runs} runs in {time.perf_counter() - started:.1f} s")
        total = httpx.get(f"{stack.base_url}/api/runs", params={"limit": 1}).json()["count"]
        assert total == args.runs, total
        api = api_latency(stack.base_url, args.requests)
        pages = page_timings(stack.base_url, args.repeat)
    print(f"GET /api/runs, {args.requests} requests each, limit 50, no cache hit: ms")
    for name, values in api.items():
        p95 = statistics.quantiles(values, n=20)[-1]
        print(f"  {name:16s} p50 {statistics.median(values):6.1f}  p95 {p95:6.1f}")
    print(f"runs page in headless Chromium, {args.repeat} loads each: median (max) ms")
    for name, values in pages.items():
        print(f"  {name:32s} {statistics.median(values):6.0f} ({max(values):5.0f})")


if __name__ == "__main__":
    main()
