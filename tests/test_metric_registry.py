"""The metric registry (contract/metrics.py): every metric declared once, and what is derived
from the declaration (record field, chart, sweep metrics, export columns, README table)
agrees with it."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from starlette.testclient import TestClient

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
                assert level.field in EmbeddingMetrics.model_fields


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
    """workers/engine/cause.py spells each signal it reads as a module constant: every one
    must name a method internal (a logs key) or a field or metric of the epoch record, so a
    misspelt or renamed signal fails here instead of reading None forever."""
    spelt = {
        name: value
        for name, value in vars(cause).items()
        if name.isupper() and isinstance(value, str)
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
    with TestClient(create_app(settings)) as http:
        served = http.get("/api/metrics").json()
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
