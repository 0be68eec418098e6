"""The metric registry (contract/metrics.py): every metric declared once, and what is derived
from the declaration (record field, chart, sweep metrics, export columns, README table)
agrees with it."""

from __future__ import annotations

import csv
import io
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch

from backend.app import create_app
from backend.routers import reports
from backend.routers.reports import _csv
from backend.settings import Settings
from backend.sweep_schemas import FinalMeans, FinalMetrics, SweepRunOut, _cell
from contract import METRICS, VERDICT_KINDS, EmbeddingMetrics, EpochRecord, metric_catalogue
from contract import metrics as registry
from contract.metrics import (
    CHARTS,
    Metric,
    all_metrics,
    check_registry,
    declared_fields,
    metric_places,
    sweep_metrics,
)
from tests.serving import serving
from workers.engine import cause
from workers.engine.metrics import embedding_diagnostics

ROOT = Path(__file__).resolve().parent.parent


def test_every_record_field_is_a_declared_metric() -> None:
    assert set(declared_fields(EmbeddingMetrics)) == set(EmbeddingMetrics.model_fields)
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    for metric in METRICS:
        assert metric.title and metric.unit is not None and metric.formula
        # the OpenAPI document describes each field with its formula (and paper)
    kinds = {m.name: m.value_type for m in METRICS}
    assert (kinds["spectrum"], kinds["dim"], kinds["effective_rank"]) == (
        "list",
        "integer",
        "number",
    )
    assert kinds["variance_shares"] == "list" and not registry.all_metrics(EpochRecord)[4].columns
    schema = EmbeddingMetrics.model_json_schema()["properties"]
    assert schema["effective_rank"]["description"].endswith("(Garrido et al., ICML 2023)")


def test_charts_draw_declared_metrics_only() -> None:
    chart_ids = [chart.id for chart in CHARTS]
    assert len(chart_ids) == len(set(chart_ids))
    charted = {m.chart for m in METRICS if m.chart is not None}
    assert charted == set(chart_ids)  # no chart without a metric, no metric on a lost chart
    for metric in METRICS:
        for level in (metric.healthy, metric.collapsed):
            if level is not None and level.field is not None:
                fields = {*EmbeddingMetrics.model_fields, *registry.METHOD_INTERNALS}
                assert level.field in fields


def test_a_misspelt_declaration_fails_at_import_time() -> None:
    bad = Metric(measured_on="embedding", title="x", unit="", formula="x", chart="rnak")
    entries = [*METRICS, *[e for e in all_metrics(EpochRecord) if e.name == "dim"]]
    with pytest.raises(ValueError, match="declared twice"):
        check_registry(entries)
    with pytest.raises(ValueError, match="no chart 'rnak'"):
        check_registry([METRICS[0].model_copy(update={"name": "x", **bad.model_dump()})])
    with pytest.raises(ValueError, match=r"one sweep metric must be the default, not \[\]"):
        check_registry([m for m in METRICS if m.name != "spread"])


def test_a_method_internal_is_declared_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    """A method's own scalar (in EpochRecord.logs) is catalogued with a logs. column and
    charted like the others; records of methods without it simply lack it (null)."""
    entropy = Metric(
        measured_on="method_internals",
        title="teacher entropy",
        unit="nats",
        formula="h(P_t)",
        paper="Caron et al., ICCV 2021, Sec. 5.3",
        chart="loss",
    )
    monkeypatch.setitem(registry.METHOD_INTERNALS, "teacher_entropy", entropy)
    entries = all_metrics(EpochRecord)
    check_registry(entries)
    (entry,) = [e for e in entries if e.name == "teacher_entropy"]
    assert entry.columns == ["logs.teacher_entropy"] and entry.measured_on == "method_internals"
    with_it = EpochRecord.model_validate(
        {"epoch": 1, "backbone": None, "projector": _probe(), "logs": {"teacher_entropy": 2.0}}
    )
    assert with_it.logs.get(entry.name) == 2.0


def test_the_signal_names_the_cause_reads_are_declared() -> None:
    """workers/engine/cause.py spells each signal it reads as a public module constant: every
    one must name a method internal (a logs key) or a field or metric of the epoch record, so a
    misspelt or renamed signal fails here instead of reading None forever."""
    spelt = {
        name: value
        for name, value in vars(cause).items()
        if name.isupper() and not name.startswith("_") and isinstance(value, str)
    }
    declared = {*registry.METHOD_INTERNALS, *EpochRecord.model_fields, *(m.name for m in METRICS)}
    assert spelt and {"TEACHER_ENTROPY", "LR"} <= set(spelt)
    assert {name: value for name, value in spelt.items() if value not in declared} == {}


def _probe() -> EmbeddingMetrics:
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(256, 16, generator=generator)
    labels = torch.arange(256) % 4
    return embedding_diagnostics(z, z + 0.1, z - 0.1, labels, None, None, 4)


def test_the_catalogue_is_served_and_the_derived_views_agree(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}")
    with serving(create_app(settings)) as url:
        served = httpx.get(f"{url}/api/metrics").json()
    assert served == metric_catalogue().model_dump(mode="json")
    # the verdict kinds the pages write and colour, in order of severity, each with its words
    assert [v["kind"] for v in served["verdicts"]] == list(VERDICT_KINDS)
    assert all(v["label"] for v in served["verdicts"])
    names = {m["name"] for m in served["metrics"]}
    assert {"effective_rank", "spread", "loss", "lr", "ema_momentum"} <= names
    # the sweep's per-run metrics: the sweep-eligible declarations, nothing else
    sweepable = {m.name for m in METRICS if m.sweep is not None}
    assert set(FinalMetrics.model_fields) == {"epoch", *sweepable}
    assert set(FinalMeans.model_fields) == sweepable


def test_a_sweep_cell_means_each_sweep_metric_over_its_runs() -> None:
    """A cell's ``final`` is every sweep-eligible metric's mean over its runs' last epochs,
    leaving out a run without one (queued) and a metric a run lacks; the default is first."""
    names = [m.name for m in sweep_metrics(METRICS)]
    assert names[0] == "spread" and len(names) > 2

    def run(seed: int, final: dict[str, Any] | None) -> SweepRunOut:
        return SweepRunOut.model_validate(
            {
                **{"id": f"r{seed}", "url": "/runs/r", "seed": seed, "status": "succeeded"},
                **{"progress": 1.0, "last_epoch": 3, "epochs": 3, "verdict_kind": "healthy"},
                **{"onset_epoch": None, "stopped_early": None, "error": None, "final": final},
            }
        )

    ones = {"epoch": 3, **dict.fromkeys(names, 1.0)}
    threes = {**ones, **dict.fromkeys(names, 3.0), names[-1]: None}
    cell = _cell(0, {"point": {"x": 1}}, [run(0, ones), run(1, threes), run(2, None)])
    assert cell.final.model_dump() == {**dict.fromkeys(names, 2.0), names[-1]: 1.0}


def test_the_epoch_csv_has_the_registrys_export_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """A metric's place in the record is a CSV column exactly when the registry declares it
    an export column (derived ones computed; lists and export=False ones left out), whether
    the record holds a value there or not; the record's other scalars stay columns."""
    hidden = registry.METHOD_INTERNALS["teacher_entropy"].model_copy(update={"export": False})
    monkeypatch.setitem(registry.METHOD_INTERNALS, "teacher_entropy", hidden)
    entries = tuple(all_metrics(EpochRecord))
    monkeypatch.setattr(reports, "METRICS", entries)
    internals = {m.name: 0.5 for m in entries if m.measured_on == "method_internals"}
    logged = EpochRecord(
        epoch=1, backbone=_probe(), projector=_probe(), lr=0.1, logs={**internals, "other": 2.0}
    )
    bare = EpochRecord(epoch=0, backbone=None, projector=_probe())
    rows = [({}, r.model_dump(mode="json")) for r in (logged, bare)]
    full, empty = csv.DictReader(io.StringIO(_csv(rows)))
    for metric in entries:
        for place in metric_places(metric.name, metric.measured_on):
            assert (place in full) == (place in metric.columns), place
    assert float(full["projector.spread"]) == pytest.approx(logged.projector.spread)
    assert "logs.teacher_entropy" not in full and full["logs.other"] == "2.0"
    assert "backbone" not in full  # the embedding's None is its columns' empty cells
    assert (full["lr"], full["epoch"], empty["backbone.spread"], empty["lr"]) == (
        "0.1",
        "1",
        "",
        "",
    )


def test_a_field_null_in_some_epochs_and_an_object_in_others_is_its_members_columns() -> None:
    """A verdict's cause is null while healthy and an object once collapsed: its members are
    columns and the field itself none (it would be empty in every row); a logged name that
    is also the start of another ("other" and "other.ema") keeps its values."""
    cause_of = {"guard": "centering", "reason": "r", "onset_epoch": 1, "advice": "a"}
    rows = []
    for epoch, cause_value in ((0, None), (1, cause_of)):
        record = EpochRecord(
            epoch=epoch, backbone=None, projector=_probe(), logs={"other": 2.0, "other.ema": 1.0}
        ).model_dump(mode="json")
        record["verdict"] = {"kind": "healthy", "reason": "r", "cause": cause_value}
        rows.append(({}, record))
    healthy, collapsed = csv.DictReader(io.StringIO(_csv(rows)))
    assert "verdict.cause" not in healthy and collapsed["verdict.cause.guard"] == "centering"
    assert healthy["verdict.cause.guard"] == ""
    assert (healthy["logs.other"], healthy["logs.other.ema"]) == ("2.0", "1.0")


# Prints the keys of the dashboard's verdict colour tables and its name for "no verdict yet".
_VERDICT_COLOUR_KEYS = """
const [colours, verdict] = await Promise.all(process.argv.slice(1).map((m) => import(m)));
const keys = (table) => Object.keys(table);
console.log(JSON.stringify({
  pending: verdict.PENDING,
  tables: [keys(colours.VERDICT_COLORS), keys(colours.VERDICT_TINTS)],
}));
"""


def test_the_dashboards_verdict_colours_are_those_of_the_served_kinds() -> None:
    """frontend/js/colours.js colours each verdict kind (before the catalogue arrives, so it
    keeps its own table): exactly the kinds GET /api/metrics serves, and "pending"."""
    node = shutil.which("node")
    assert node, "node (installed with npm by scripts/install-system-deps.sh) runs this test"
    modules = [(ROOT / "frontend/js" / name).as_uri() for name in ("colours.js", "verdict.js")]
    result = subprocess.run(
        [node, "--input-type=module", "-e", _VERDICT_COLOUR_KEYS, *modules],
        capture_output=True,
        text=True,
        check=True,
    )
    found = json.loads(result.stdout)
    served = [v.kind for v in metric_catalogue().verdicts]
    assert found["tables"] == [[*served, found["pending"]]] * 2


def test_the_readme_table_is_generated_from_the_registry() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/metric_table.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'client'}", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for metric in METRICS:
        assert f"| `{metric.name}` |" in readme


def test_a_chart_drawing_an_undeclared_guest_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    import contract.metrics as registry

    guest = registry.Chart(id="std", title="x", y_title="x", also={"lr": "y2", "nope": "y"})
    monkeypatch.setattr(registry, "CHARTS", (*registry.CHARTS[1:], guest))
    with pytest.raises(ValueError, match=r"chart 'std' draws undeclared metrics \['nope'\]"):
        registry.check_registry(METRICS)


def test_the_epoch_records_logs_are_typed_by_name_from_the_registry() -> None:
    """The OpenAPI document (and the dashboard's generated types) name every declared
    mechanism signal and schedule of ``logs``; other names (loss terms) stay numbers."""
    from contract.metrics import METHOD_INTERNALS

    logs = EpochRecord.model_json_schema()["properties"]["logs"]
    assert set(logs["properties"]) == set(METHOD_INTERNALS)
    assert (
        logs["properties"]["teacher_entropy"]["title"] == METHOD_INTERNALS["teacher_entropy"].title
    )
    assert logs["additionalProperties"] == {"type": "number"}


# -- the mechanism panels: which charts a run shows, and the levels drawn on them ---------------


def test_the_optimisers_schedules_are_not_on_a_familys_panel() -> None:
    """Every SGD run logs its learning rate and weight decay (the weight_decay cause reads them
    for any method): each is declared once on a chart of no family's panel, so no run's
    method decides whether it is drawn, and drawn beside what it explains as a guest."""
    charts = {chart.id: chart for chart in CHARTS}
    by_name = {metric.name: metric for metric in METRICS}
    for name in ("lr", "weight_decay"):
        chart = charts[str(by_name[name].chart)]
        assert chart.group is None, (name, chart.id)
        assert by_name[name].axis == "y" or not chart.hide_when_empty, name
    assert charts["predictor"].also == {"weight_decay": "y2"}  # Tian et al.'s threshold
    assert charts["std"].also == {"lr": "y2"}
    # every schedule is drawn on its own chart, which a run that logs it shows
    for name in (
        "ema_momentum",
        "temperature",
        "teacher_temperature",
        "student_temperature",
        "sinkhorn_epsilon",
        "prediction_temperature",
    ):
        assert by_name[name].chart in charts, name


def test_the_panels_collapse_levels_are_the_causes_thresholds() -> None:
    """Where a guard's check has a number, the signal's collapsed level is it: the levels
    read contract/cause_thresholds.py, as the checks of workers/engine/cause.py do."""
    limits = cause.CAUSE_THRESHOLDS
    internal = {
        name: metric.collapsed
        for name, metric in registry.METHOD_INTERNALS.items()
        if metric.collapsed is not None
    }
    negatives = internal["effective_negatives"]
    assert negatives == registry.Level(value=limits.effective_negatives_none, label=negatives.label)
    shares = {
        name: (level.context or level.field, level.epoch0, level.times)
        for name, level in internal.items()
        if level.times != 1
    }
    assert shares == {
        "teacher_entropy": ("log_k", False, limits.entropy_share_no_centering),
        "teacher_student_kl": ("log_k", False, limits.kl_share_collapsed),
        "log_k": ("log_k", False, limits.entropy_share_no_sharpening),
        "assignment_entropy": ("cluster_entropy_max", False, limits.assignment_share_uniform),
        "usage_entropy_after_balancing": (
            "cluster_entropy_max",
            False,
            limits.usage_share_unbalanced,
        ),
        "off_diagonal_energy": ("z_dim_minus_one", False, limits.off_diagonal_share),
        "sigreg_statistic": (None, True, limits.sigreg_not_reduced),
    }
    # a method internal's d is z's, whichever representation the page shows
    assert internal["loss_on_diagonal"].context == "z_dim"


def test_a_level_has_one_source_and_names_a_declared_field(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ValueError, match="a value, a context, a field or epoch0"):
        registry.Level(value=1, field="log_k", label="x")
    with pytest.raises(ValueError, match="times scales a context, field or epoch0"):
        registry.Level(value=1, times=0.5, label="x")
    assert registry.Level(epoch0=True, times=0.9, label="x").epoch0
    bad = registry.METHOD_INTERNALS["teacher_entropy"].model_copy(
        update={"collapsed": registry.Level(field="log_kk", label="x")}
    )
    monkeypatch.setitem(registry.METHOD_INTERNALS, "teacher_entropy", bad)
    with pytest.raises(ValueError, match="a level names no field 'log_kk'"):
        check_registry(all_metrics(EpochRecord))


def test_a_chart_drawing_its_own_metric_as_a_guest_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    twice = registry.Chart(id="predictor", title="x", y_title="x", also={"predictor_symmetry": "y"})
    monkeypatch.setattr(registry, "CHARTS", (*registry.CHARTS, twice))
    with pytest.raises(ValueError, match=r"'predictor' draws its own metrics \['predictor_sym"):
        check_registry(METRICS)


# Runs frontend/js/plots.js (the one chart builder of the run page, the compare page and the
# reports) on constructed epoch records: per case, each chart diagnosticFigures draws with its
# traces (name, axis) and its reference lines (label, axis, height).
_DRAW_CASES = """
globalThis.window = { Plotly: {} };  // plots.js waits for Plotly.js; nothing here draws
const plots = await import(process.argv[1]);
let input = "";
for await (const chunk of process.stdin) input += chunk;
const { catalogue, cases } = JSON.parse(input);
plots.useMetricCatalogue(catalogue);
const drawn = cases.map(({ runs, which }) => {
  const series = runs.map(({ run, records }, i) => ({
    name: `run ${i}`, color: "#000", records, ctx: plots.chartContext(run, records, which),
  }));
  return Object.fromEntries(plots.diagnosticFigures(series, which).map(({ id, figure }) => [id, {
    traces: figure.data.map((t) => [t.name, t.yaxis || "y"]),
    y2: figure.layout.yaxis2 ? { rangemode: figure.layout.yaxis2.rangemode ?? null } : null,
    left: (figure.layout.annotations || []).filter((a) => a.xref === "paper" && a.x === 0)
      .map((a) => a.text),
    refs: (figure.layout.annotations || []).filter((a) => a.xref === "paper" && a.yref !== "paper")
      .map((a) => [a.text, a.yref, a.y]),
  }]));
});
console.log(JSON.stringify(drawn));
"""

# what each family logs on the probe (tests/test_mechanisms.py has the methods' own sets),
# with the schedules a built-in run of it logs
_WD = {"weight_decay": 5e-4}
_LOGS: dict[str, dict[str, float]] = {
    "simsiam": {
        **_WD,
        "online_target_cosine": 0.6,
        "rank_differential": 2.0,
        "predictor_commutator": 0.3,
        "predictor_eigen_alignment": 0.8,
        "predictor_symmetry": 0.9,
    },
    "simclr": {
        **_WD,
        "temperature": 0.5,
        "infonce_alignment": -1.5,
        "infonce_repulsion": 6.0,
        "effective_negatives": 300.0,
        "projector_layer_alignment": 0.2,
    },
    "swav": {
        **_WD,
        "sinkhorn_epsilon": 0.05,
        "prediction_temperature": 0.1,
        "assignment_entropy": 2.0,
        "usage_entropy_before_balancing": 3.0,
        "usage_entropy_after_balancing": 3.2,
    },
    "barlow_twins": {
        **_WD,
        "loss_on_diagonal": 3.0,
        "loss_off_diagonal": 5.0,
        "off_diagonal_energy": 9.0,
    },
    "vicreg": {
        **_WD,
        "loss_invariance": 0.2,
        "loss_variance": 0.6,
        "loss_covariance": 0.1,
        "dims_under_variance_hinge": 1.0,
        "off_diagonal_energy": 9.0,
    },
    "lejepa": {**_WD, "sigreg_statistic": 70.0, "off_diagonal_energy": 9.0},
    "dino": {
        "weight_decay": 0.04,
        "teacher_entropy": 4.0,
        "teacher_student_kl": 0.9,
        "log_k": 4.852,
        "teacher_temperature": 0.04,
        "student_temperature": 0.1,
        "center_norm": 1.0,
        "target_param_distance": 0.02,
        "assignment_entropy": 4.0,
        "usage_entropy_before_balancing": 4.5,
        "usage_entropy_after_balancing": 4.8,
    },
}
_VICREG_LINES = {"every dimension spread: 0", "0 with the variance term at 1: collapsed"}


def _embedding(dim: int) -> dict[str, Any]:
    generator = torch.Generator().manual_seed(dim)
    z = torch.randn(256, dim, generator=generator)
    labels = torch.arange(256) % 4
    metrics = embedding_diagnostics(z, z + 0.1, z - 0.1, labels, None, None, 4)
    return metrics.model_dump(mode="json")


def _constructed(
    method: str, epochs: int = 2, start: dict[str, float] | None = None
) -> dict[str, Any]:
    """A run of ``method`` with ``epochs + 1`` records of its family's logs (``start``: the
    values of epoch 0 that differ), z of 16 dimensions and h of 32; a clustering method's
    with K = 8 prototypes (log K of z: ln 8)."""
    z, h = _embedding(16), _embedding(32)
    if method == "swav":
        z["cluster_entropy_max"] = math.log(8)
    logs = _LOGS[method]
    ema = {"ema_momentum": 0.996} if method == "dino" else {}
    records = [
        EpochRecord.model_validate(
            {
                "epoch": epoch,
                "backbone": h,
                "projector": z,
                "lr": 0.05,
                **ema,
                "logs": {**logs, **(start or {})} if epoch == 0 else logs,
            }
        ).model_dump(mode="json")
        for epoch in range(epochs + 1)
    ]
    run = {"method": method, "epochs": epochs, "config": {"proj_dim": 16, "lr": 0.05}}
    return {"run": run, "records": records}


def _draw(*cases: tuple[list[dict[str, Any]], str]) -> list[dict[str, Any]]:
    node = shutil.which("node")
    assert node, "node (installed with npm by scripts/install-system-deps.sh) runs this test"
    catalogue = metric_catalogue().model_dump(mode="json")
    result = subprocess.run(
        [node, "--input-type=module", "-e", _DRAW_CASES, (ROOT / "frontend/js/plots.js").as_uri()],
        input=json.dumps(
            {"catalogue": catalogue, "cases": [{"runs": r, "which": w} for r, w in cases]}
        ),
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    drawn: list[dict[str, Any]] = json.loads(result.stdout)
    return drawn


def _draw_each_family() -> dict[str, dict[str, Any]]:
    """The charts of one constructed run of each family, by method."""
    methods = list(_LOGS)
    drawn = _draw(*(([_constructed(method)], "projector") for method in methods))
    return dict(zip(methods, drawn, strict=True))


def _labels(chart: dict[str, Any]) -> set[str]:
    return {label for text, _, _ in chart["refs"] for label in text.split(" · ")}


def test_a_panel_shows_when_any_of_its_signals_has_values_with_the_runs_own_levels() -> None:
    """The redundancy panel's geometry chart of a Barlow Twins or LeJEPA run (no variance
    hinge, but the off-diagonal energy the decorrelation cause reads), and each panel's lines
    of the signals the run logs only: no VICReg line on a Barlow Twins or LeJEPA chart, no
    BYOL line on DINO's asymmetric chart; a schedule alone (weight decay, logged by every run)
    brings no panel."""
    drawn = _draw_each_family()
    titles = {m.name: m.title for m in METRICS}
    for method in ("barlow_twins", "vicreg", "lejepa"):
        geometry = drawn[method]["redundancy_geometry"]
        assert [titles["off_diagonal_energy"], "y2"] in geometry["traces"], method
        # half the ceiling d - 1 of z (d = 16), the decorrelation cause's threshold
        assert ["half the ceiling d − 1: 7.5", "y2", 7.5] in geometry["refs"], method
    barlow, lejepa = drawn["barlow_twins"]["redundancy_terms"], drawn["lejepa"]["redundancy_terms"]
    assert _labels(barlow) == {"views agree: 0", "decorrelated: 0", "d = 16: no agreement"}
    assert ["views agree: 0 · decorrelated: 0", "y", 0] in barlow["refs"]  # one line, both said
    # SIGReg's own line: 0.9 of its epoch-0 value, where the cause reads "not reduced"
    assert lejepa["refs"] == [["0.9 × epoch 0 = 63: not reduced, SIGReg idle", "y", 63]]
    assert _labels(drawn["vicreg"]["redundancy_terms"]) >= _VICREG_LINES
    assert "online copies target: 1" not in _labels(drawn["dino"]["asymmetric"])
    assert "online copies target: 1" in _labels(drawn["simsiam"]["asymmetric"])
    family = {"predictor", "infonce", "negatives", "assignments", "redundancy_terms", "dino"}
    shown = {method: family & set(charts) for method, charts in drawn.items()}
    assert shown == {
        "simsiam": {"predictor"},
        "simclr": {"infonce", "negatives"},
        "swav": {"assignments"},
        "barlow_twins": {"redundancy_terms"},
        "vicreg": {"redundancy_terms"},
        "lejepa": {"redundancy_terms"},
        "dino": {"assignments", "dino"},
    }


def test_every_run_that_logs_its_weight_decay_draws_it() -> None:
    """Weight decay on the optimiser chart, against the learning rate, for every method that
    logs it; beside the predictor's signals where a run has them (Tian et al.)."""
    drawn = _draw_each_family()
    titles = {m.name: m.title for m in METRICS}
    for method, charts in drawn.items():
        optimiser = charts["optimiser"]["traces"]
        assert optimiser == [[titles["weight_decay"], "y"], [titles["lr"], "y2"]], method
    assert [titles["weight_decay"], "y2"] in drawn["simsiam"]["predictor"]["traces"]
    # a run that logs no weight decay (an external loop) has no optimiser chart
    bare = _constructed("lejepa")
    for record in bare["records"]:
        del record["logs"]["weight_decay"]
    (charts,) = _draw(([bare], "projector"))
    assert "optimiser" not in charts and "redundancy_geometry" in charts


def test_the_levels_the_docs_give_are_drawn_from_the_runs_own_values() -> None:
    """DINO's entropy and KL shares of its ln K, the contrastive cause's 1.5 negatives, the
    balancing shares of log K; a method internal's d is z's on the backbone's page too; a
    level relative to epoch 0 is drawn over several runs only where they agree on it."""
    other_start = _constructed("lejepa", start={"sigreg_statistic": 60.0})
    dino, simclr, swav, barlow_h, two_same, two_apart = _draw(
        ([_constructed("dino")], "projector"),
        ([_constructed("simclr")], "projector"),
        ([_constructed("swav")], "projector"),
        ([_constructed("barlow_twins")], "backbone"),
        ([_constructed("lejepa"), _constructed("lejepa")], "projector"),
        ([_constructed("lejepa"), other_start], "projector"),
    )
    assert {
        "0.1 ln K = 0.49: no centering",
        "0.08 ln K = 0.39: student = teacher",
        "0.9 ln K = 4.37: no sharpening",
    } <= _labels(dino["dino"])
    assert ["under 1.5: one hard negative carries the repulsion", "y", 1.5] in simclr["negatives"][
        "refs"
    ]
    heights = {text: y for text, _, y in swav["assignments"]["refs"]}
    ln_k = math.log(8)
    assert heights["½ ln K = 1.04: fewer than √K clusters used"] == pytest.approx(ln_k / 2)
    assert heights["0.97 ln K = 2.02: codes uniform"] == pytest.approx(0.97 * ln_k)
    assert heights["ln K = 2.08: balanced"] == pytest.approx(ln_k)
    # the two levels near ln K would overprint: the lower one is labelled at its line's left end
    assert swav["assignments"]["left"] == ["0.97 ln K = 2.02: codes uniform"]
    # SwAV's ε and τ beside the sharpness and usage they set, on a second axis from 0
    for name in ("sinkhorn_epsilon", "prediction_temperature"):
        title = registry.METHOD_INTERNALS[name].title
        assert [title, "y2"] in swav["assignments"]["traces"], name
    assert swav["assignments"]["y2"] == {"rangemode": "tozero"}
    assert barlow_h["redundancy_geometry"]["y2"] == {"rangemode": None}  # not declared so
    # the backbone's h has 32 dimensions, Barlow Twins' cross-correlation is z's 16
    assert "d = 16: no agreement" in _labels(barlow_h["redundancy_terms"])
    assert ["half the ceiling d − 1: 7.5", "y2", 7.5] in barlow_h["redundancy_geometry"]["refs"]
    assert two_same["redundancy_terms"]["refs"] == [
        ["0.9 × epoch 0 = 63: not reduced, SIGReg idle", "y", 63]
    ]
    assert two_apart["redundancy_terms"]["refs"] == []  # each run started elsewhere
