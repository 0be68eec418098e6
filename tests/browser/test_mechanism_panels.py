"""The mechanism panel of a run's family on the run page, in a real Chromium against the real
stack (docs/mechanisms.md): its charts drawn from the metric catalogue with the registry's
titles, the weight decay on the second axis, the help sentences under them; the panels of
other families left out; each panel's reference lines those of the signals the run logs."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, Page

from backend.store import epochs as epoch_store
from backend.store import runs as run_store
from backend.store.database import Database
from contract import EmbeddingMetrics, EpochRecord
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
    drawn = drawn_traces(page, ["asymmetric", "predictor", "loss"])
    # the loss at SimSiam's trivial solution (MethodSpec.collapsed_loss), from the catalogue
    assert "trivial solution −1" in drawn_lines(page, ["loss"])["loss"]
    titles = {name: metric["title"] for name, metric in internals.items()}
    assert set(drawn["asymmetric"]) == {
        titles["online_target_cosine"],
        titles["projection_target_cosine"],
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
    # DINO declares no loss at a trivial solution: its loss chart has no such line
    assert not any("trivial" in line for line in drawn_lines(page, ["loss"])["loss"])
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


# -- constructed runs: what a Barlow Twins and a LeJEPA run log, stored without training ------

D = 16  # z's dimensions
REDUNDANCY_LOGS = {
    "barlow_twins": {"loss_on_diagonal": 3.0, "loss_off_diagonal": 5.0, "off_diagonal_energy": 9.0},
    "lejepa": {"sigreg_statistic": 70.0, "off_diagonal_energy": 9.0},
}
VICREG_LINES = {"every dimension spread: 0", "0 with the variance term at 1: collapsed"}


def _embedding() -> EmbeddingMetrics:
    """An isotropic z of D dimensions, as far as the charts read it."""
    return EmbeddingMetrics(
        dim=D,
        std_l2=1 / math.sqrt(D),
        std_l2_sqrt_d=1.0,
        effective_rank=D - 1,
        spectrum=[math.log(1 / D)] * D,
        alignment=0.5,
        uniformity=-3.5,
        cos_pos=0.6,
        cos_rand=0.0,
        knn_top1=0.5,
    )


def _stored_run(db: Database, method: str, logs: dict[str, float]) -> str:
    """A run that no worker trains (cancelled at once) with three stored epochs of logs."""
    config = {"method": method, "dataset": "digits", "backbone": "small_cnn", "epochs": 2}
    run_id = run_store.create_run(db, config, {**config, "seed": 0, "options": {}}).id
    run_store.request_cancel(db, run_id)
    for epoch in range(3):
        record = EpochRecord(
            epoch=epoch,
            backbone=None,
            projector=_embedding(),
            lr=0.05,
            logs={**logs, "weight_decay": 5e-4},
        )
        epoch_store.record_epoch(db, run_id, record)
    return run_id


@pytest.fixture(scope="module")
def redundancy_runs(dashboard_stack: ServiceStack) -> Iterator[dict[str, str]]:
    db = Database(dashboard_stack.database_url)
    yield {method: _stored_run(db, method, logs) for method, logs in REDUNDANCY_LOGS.items()}
    db.dispose()


def drawn_lines(page: Page, ids: list[str]) -> dict[str, list[str]]:
    """Per chart of ``ids`` (drawn), the labels of its reference lines, as written on it."""
    lines: dict[str, list[str]] = page.evaluate(
        """(ids) => Object.fromEntries(ids.map((id) => [id, (document.getElementById(
            `plot-${id}`).layout.annotations || []).map((a) => a.text)]))""",
        ids,
    )
    return lines


def test_barlow_twins_and_lejepa_runs_show_their_own_redundancy_signals_and_lines(
    dashboard_stack: ServiceStack,
    writer: httpx.Client,
    writer_context: BrowserContext,
    redundancy_runs: dict[str, str],
) -> None:
    """The redundancy panel's geometry chart for the runs that log the off-diagonal energy
    (the decorrelation cause's signal) but no variance hinge, with the cause's threshold;
    their loss-term chart with their own lines, none of VICReg's; the weight decay they log
    on the optimiser chart. The compare page overlays them with the lines of both."""
    titles = {m["name"]: m["title"] for m in writer.get("/api/metrics").json()["metrics"]}
    charts = ["redundancy_terms", "redundancy_geometry", "optimiser"]
    page = writer_context.new_page()
    lines = {}
    for method, run_id in redundancy_runs.items():
        page.goto(f"{dashboard_stack.base_url}/runs/{run_id}")
        drawn = drawn_traces(page, charts)
        energy = drawn["redundancy_geometry"][titles["off_diagonal_energy"]]
        assert (energy["axis"], energy["n"]) == ("y2", 3), method
        assert drawn["optimiser"][titles["weight_decay"]]["last"] == pytest.approx(5e-4)
        assert page.locator("#card-predictor").count() == 0  # weight decay brings no panel
        lines[method] = drawn_lines(page, charts)
        assert "half the ceiling d − 1: 7.5" in lines[method]["redundancy_geometry"], method
        assert not VICREG_LINES & set(lines[method]["redundancy_terms"]), method
    assert set(lines["barlow_twins"]["redundancy_terms"]) == {
        "views agree: 0 · decorrelated: 0",
        "d = 16: no agreement",
    }
    sigreg = "0.9 × epoch 0 = 63: not reduced, SIGReg idle"
    assert lines["lejepa"]["redundancy_terms"] == [sigreg]
    ids = ",".join(redundancy_runs.values())
    page.goto(f"{dashboard_stack.base_url}/compare?runs={ids}")
    drawn_traces(page, charts)
    both = drawn_lines(page, charts)["redundancy_terms"]
    assert set(both) == {*lines["barlow_twins"]["redundancy_terms"], sigreg}
