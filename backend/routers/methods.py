"""``GET /api/methods``: the catalogue the launch form is generated from; ``GET /api/metrics``:
the metric catalogue the charts are drawn from (:func:`contract.metric_catalogue`: every
diagnostic with its formula, paper, reference levels, chart and sweep use; the charts in page
order).

Response::

    {"methods": [{"name", "title", "paper", "family", "options_schema" (JSON Schema of the
                  method's options, with descriptions), "options_defaults", "defaults"
                  (RunConfig fields the method sets, e.g. lr), "z_description",
                  "collapsed_loss" (the loss at the trivial solution, or null)}],
     "presets": [{"name", "title", "description", "method", "config", "expected"}],
     "config_schema": JSON Schema of a run config (POST /api/runs body),
     "config_defaults": the generic RunConfig defaults,
     "datasets": [...], "dataset_classes": {dataset: classes or null},
     "limits": {"epochs", "batch_size", "probe_size", "train_size"},
     "plugin_errors": [{"plugin", "error"}] (method plugins left out, and why),
     "cause_guards": the vocabulary of a verdict's cause (contract.CAUSE_GUARDS),
     "zoo_fields": the run-config fields the zoo sets for every preset (contract.ZOO_FIELDS)}

Methods from plugins (``contract.plugins``) carry ``"plugin"``: its name.

The model is :class:`backend.schemas.Catalogue`.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import APIRouter

from backend.schemas import Catalogue
from backend.state import StateDep
from contract import (
    CAUSE_GUARDS,
    DATASET_CLASSES,
    DATASET_SPECS,
    METHOD_SPECS,
    PLUGIN_ERRORS,
    PLUGIN_METHODS,
    PRESETS,
    ZOO_FIELDS,
    MetricCatalogue,
    RunConfig,
    metric_catalogue,
)

router = APIRouter(prefix="/api", tags=["methods"])


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Any]:
    """The run spec's catalogue as JSON (computed once per process)."""
    methods = [
        {
            "name": name,
            "title": spec.title,
            "paper": spec.paper,
            "family": spec.family,
            "options_schema": spec.options.model_json_schema(),
            "options_defaults": spec.options().model_dump(),
            "defaults": dict(spec.defaults),
            "z_description": spec.z_description,
            "collapsed_loss": spec.collapsed_loss,
            "plugin": PLUGIN_METHODS.get(name),
        }
        for name, spec in METHOD_SPECS.items()
    ]
    presets = [
        {
            "name": p.name,
            "title": p.title,
            "description": p.description,
            "method": p.config["method"],
            "config": p.config,
            "expected": p.expected,
        }
        for p in PRESETS.values()
    ]
    defaults = {
        name: field.get_default(call_default_factory=True)
        for name, field in RunConfig.model_fields.items()
        if name not in ("method",)
    }
    return {
        "methods": methods,
        "presets": presets,
        "config_schema": RunConfig.model_json_schema(),
        "config_defaults": defaults,
        "datasets": list(DATASET_SPECS),
        "dataset_classes": DATASET_CLASSES,
        "plugin_errors": [{"plugin": e.plugin, "error": e.error} for e in PLUGIN_ERRORS],
        "cause_guards": list(CAUSE_GUARDS),
        "zoo_fields": list(ZOO_FIELDS),
    }


@router.get("/methods", response_model=Catalogue)
def methods(state: StateDep) -> Catalogue:
    """Methods with their options (JSON Schema), defaults, presets and this server's limits."""
    settings = state.settings
    return Catalogue.model_validate(
        {
            **catalogue(),
            "limits": {
                "epochs": settings.max_epochs,
                "batch_size": settings.max_batch_size,
                "probe_size": settings.max_probe_size,
                "train_size": settings.max_train_size,
            },
        }
    )


@router.get("/metrics", response_model=MetricCatalogue)
def metrics() -> MetricCatalogue:
    """Every diagnostic (declared once, in contract/metrics.py) and every chart, in page order."""
    return metric_catalogue()
