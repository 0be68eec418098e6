"""The mechanism panel of a run's family on the run page, in a real Chromium against the real
stack (docs/mechanisms.md): its charts drawn from the metric catalogue with the registry's
titles, the weight decay on the second axis, the help sentences under them; the panels of
other families left out."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from tests.browser.conftest import launch_and_finish
from tests.service.stack import TINY_RUN, ServiceStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def drawn_traces(page: Page, ids: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """Once every chart of ``ids`` is drawn: per chart, its traces by name with their axis,
    their number of points and their last value."""
    page.wait_for_function(
        "(ids) => ids.every((id) => document.getElementById(`plot-${id}`)?.data?.length > 0)",
        arg=ids,
    )
    traces: dict[str, dict[str, dict[str, Any]]] = page.evaluate(
        """(ids) => Object.fromEntries(ids.map((id) => [id, Object.fromEntries(
            document.getElementById(`plot-${id}`).data.map((t) => [t.name,
                {axis: t.yaxis, n: t.y.length, last: t.y[t.y.length - 1]}]))]))""",
        ids,
    )
    return traces


def test_a_simsiam_run_shows_the_asymmetric_branch_panel_only(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    finished_runs: list[dict[str, Any]],
) -> None:
    run = finished_runs[1]  # SimSiam with its stop-gradient
    catalogue = writer.get("/api/metrics").json()
    internals = {
        m["name"]: m for m in catalogue["metrics"] if m["measured_on"] == "method_internals"
    }
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/runs/{run['id']}")
    drawn = drawn_traces(page, ["asymmetric", "predictor"])
    titles = {name: metric["title"] for name, metric in internals.items()}
    assert set(drawn["asymmetric"]) == {
        titles["online_target_cosine"],
        titles["rank_differential"],
    }  # SimSiam has no separate target: no parameter distance
    predictor = drawn["predictor"]
    assert set(predictor) == {
        titles[name]
        for name in (
            "predictor_commutator",
            "predictor_eigen_alignment",
            "predictor_symmetry",
            "weight_decay",
        )
    }
    assert predictor[titles["weight_decay"]]["axis"] == "y2"
    assert all(t["n"] == run["epochs"] + 1 for t in predictor.values())  # every epoch, 0 too
    help_text = page.text_content("#card-predictor .chart-help", timeout=5000) or ""
    assert "asymmetric branch" in help_text
    assert internals["predictor_eigen_alignment"]["help"] in help_text
    assert "least-squares" in internals["predictor_commutator"]["formula"]
    for other in ("infonce", "negatives", "assignments", "redundancy_terms", "dino"):
        assert page.locator(f"#card-{other}").count() == 0, other


def test_a_dino_run_shows_the_dino_panel_with_its_temperatures_against_ln_k(
    dashboard_stack: ServiceStack, writer: httpx.Client, writer_context: BrowserContext
) -> None:
    """DINO's panel (Caron et al., Sec. 5.3): the teacher's entropy, KL(P_t‖P_s) and ln K, the
    two temperatures on the second axis; the centre's norm; the momentum target's distance on
    the asymmetric panel; no contrastive or predictor panel."""
    tiny = {key: value for key, value in TINY_RUN.items() if key not in ("method", "epochs")}
    run = launch_and_finish(writer, {**tiny, "preset": "dino", "epochs": 2})
    titles = {m["name"]: m["title"] for m in writer.get("/api/metrics").json()["metrics"]}
    page = writer_context.new_page()
    page.goto(f"{dashboard_stack.base_url}/runs/{run['id']}")
    drawn = drawn_traces(page, ["dino", "dino_center", "loss", "asymmetric", "std"])
    dino = drawn["dino"]
    expected = ("teacher_entropy", "teacher_student_kl", "log_k")
    assert {titles[n] for n in (*expected, "teacher_temperature", "student_temperature")} <= set(
        dino
    )
    assert all(dino[titles[n]]["n"] == 3 for n in expected)  # epochs 0, 1, 2
    assert dino[titles["student_temperature"]]["axis"] == "y2"
    records = writer.get(f"/api/runs/{run['id']}/epochs").json()
    assert dino[titles["log_k"]]["last"] == pytest.approx(records[-1]["logs"]["log_k"])
    for other in ("infonce", "negatives", "predictor"):
        assert page.locator(f"#card-{other}").count() == 0, other
    # the schedules beside what they explain (Chart.also): the loss against ln K, the EMA
    # momentum beside the target's lag, the learning rate on the spread's second axis
    assert drawn["loss"][titles["log_k"]]["axis"] == "y"
    assert drawn["asymmetric"][titles["ema_momentum"]]["axis"] == "y"
    assert drawn["std"][titles["lr"]]["axis"] == "y2"
