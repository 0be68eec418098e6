"""First paint of every dashboard page on loopback, in Debian's headless Chromium.

Setting: a real redis-server, uvicorn API (SQLite), one train and one projection worker, two
finished runs with their projections (``make up``'s stack, started here). Each page is
opened ``--repeat`` times in a fresh browser context (cold) and once more in the same
context (warm: HTTP cache and compiled-code cache, as for a researcher who keeps the
dashboard open); reported per page and cache state:

* first contentful paint (the browser's ``paint`` timing), and
* ready: navigation start -> the page's data drawn (runs table row, launch form, run plots
  and UMAP, both runs on the comparison plots).

Run from the repository root: ``python -m bench.bench_first_paint [--repeat 5]``.
Target (README, Benchmarks): first paint under 1 s on loopback.
"""

from __future__ import annotations

import argparse
import statistics

import httpx
from playwright.sync_api import Page, sync_playwright

from bench.local_stack import local_stack
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, DESKTOP
from tests.service.stack import TINY_RUN, ServiceStack, wait_until

# page -> (path, JavaScript predicate that holds once its data is drawn)
PAGES = {
    "runs": ("/", "document.querySelector('tr[data-run-id]') !== null"),
    "launch": ("/launch", "document.getElementById('launch-button') !== null"),
    "run": (
        "/runs/{a}",
        "document.getElementById('plot-std')?.data !== undefined"
        " && document.querySelector('.umap-plot')?.dataset.epoch !== undefined",
    ),
    "compare": (
        "/compare?runs={a},{b}",
        "document.getElementById('plot-rank')?.data?.length === 2",
    ),
}


def finished_runs(stack: ServiceStack) -> list[str]:
    ids = []
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        for seed in (0, 1):
            response = client.post("/api/runs", json={**TINY_RUN, "epochs": 4, "seed": seed})
            response.raise_for_status()
            ids.append(response.json()["id"])
        for run_id in ids:
            wait_until(
                lambda run_id=run_id: (
                    client.get(f"/api/runs/{run_id}").json()["status"] == "succeeded"
                ),
                timeout=300,
                what=f"run {run_id} to finish",
            )
            projected = f"/api/runs/{run_id}/projections"
            wait_until(
                lambda projected=projected: len(client.get(projected).json()["epochs"]) >= 5,
                timeout=120,
                what=f"projections of run {run_id}",
            )
    return ids


def load(page: Page, url: str, ready: str) -> tuple[float, float]:
    """Open ``url``; -> (first contentful paint, data drawn) in ms from navigation start."""
    page.goto(url)
    page.wait_for_function(ready, polling="raf", timeout=60_000)
    ready_ms = page.evaluate("performance.now()")
    paint_ms = page.evaluate("performance.getEntriesByName('first-contentful-paint')[0]?.startTime")
    return paint_ms, ready_ms


def measure(
    base_url: str, ids: list[str], repeat: int
) -> dict[tuple[str, str], list[tuple[float, float]]]:
    """-> {(page, "cold" | "warm"): [(paint ms, ready ms), ...]}"""
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for _ in range(repeat):
            for name, (path, ready) in PAGES.items():
                context = browser.new_context(viewport=DESKTOP)
                page = context.new_page()
                url = base_url + path.format(a=ids[0], b=ids[1])
                # cold: a fresh profile; warm: the same page again (HTTP and code caches)
                for cache in ("cold", "warm"):
                    results.setdefault((name, cache), []).append(load(page, url, ready))
                context.close()
        browser.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with local_stack(workers=True) as stack:
        ids = finished_runs(stack)
        results = measure(stack.base_url, ids, args.repeat)
    print(f"{args.repeat} loads per page and cache state, loopback; median (max) in ms")
    print(f"{'page':16s} {'first contentful paint':>24s} {'data drawn':>18s}")
    for (name, cache), loads in results.items():
        # a load the browser recorded no paint entry for is left out of that column
        paints = [paint for paint, _ in loads if paint is not None]
        readies = [ready for _, ready in loads]
        label = f"{name} ({cache})"
        paint = f"{statistics.median(paints):.0f} ({max(paints):4.0f})" if paints else "n/a"
        print(f"{label:16s} {paint:>24s} {statistics.median(readies):11.0f} ({max(readies):4.0f})")


if __name__ == "__main__":
    main()
