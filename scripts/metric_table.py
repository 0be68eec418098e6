"""The README's metric table, generated from the metric registry (contract/metrics.py).

``--write`` rewrites it in README.md, ``--check`` fails when it is out of date
(scripts/readme_table.py); tests/test_metric_registry.py runs ``--check``: a metric declared
without regenerating the table fails the tests.
"""

from __future__ import annotations

import sys

from readme_table import main

from contract import METRICS
from contract.metrics import Level, MetricEntry

MEASURED_ON = {"embedding": "h and z", "run": "run", "method_internals": "method internals"}
CONTEXT_WORDS = {
    "dim": "d",
    "chance": "chance (1/classes)",
    "collapse_loss": "the loss at the trivial solution",
    "base_lr": "the configured lr",
    "z_dim": "d of z",
    "z_dim_minus_one": "(d − 1) of z",
}


def _level(level: Level | None) -> str:
    if level is None:
        return ""
    if level.value is not None:
        return f"{level.value:.3g}"
    scale = "" if level.times == 1 else f"{level.times:.3g} × "
    if level.context is not None:
        return scale + CONTEXT_WORDS[level.context]
    if level.field is not None:
        return f"{scale}`{level.field}`"
    if level.epoch0:
        return f"{scale}its epoch-0 value"
    return level.label


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _row(metric: MetricEntry) -> str:
    paper = f" ({metric.paper})" if metric.paper else ""
    sweep = ""
    if metric.sweep is not None:
        sweep = "yes, higher healthier" if metric.sweep.higher_is_healthier else "yes"
    cost = "every epoch" if metric.cost == "every_epoch" else "every few epochs"
    chart = metric.chart or ("derived" if metric.derived else "")
    cells = [
        f"`{metric.name}`",
        MEASURED_ON[metric.measured_on],
        _cell(f"{metric.formula}{paper}"),
        _cell(_level(metric.healthy)),
        _cell(_level(metric.collapsed)),
        cost,
        chart,
        sweep,
    ]
    return "| " + " | ".join(cells) + " |"


def metric_table() -> str:
    """The markdown table, one row per declared metric, in declaration order."""
    header = (
        "| metric | on | what it measures (paper) | healthy | collapsed | cost | chart | sweep |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- |"
    )
    return "\n".join([header, *(_row(metric) for metric in METRICS)])


if __name__ == "__main__":
    sys.exit(main("metric-table", __doc__.splitlines()[0], metric_table))
