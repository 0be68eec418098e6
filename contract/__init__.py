"""The run spec: the engine's torch-free half, and the contract every layer shares.

Run configs and how they resolve (:mod:`.config`), each method's options and catalogue entry
(:mod:`.methods`), the presets (:mod:`.presets`), the dataset registry (:mod:`.datasets`) and
the records (statuses, verdicts, the epoch record: :mod:`.records`). The API validates
requests against these without importing torch; the engine trains from them.
"""

from contract.config import BackboneName, RunConfig
from contract.datasets import DATASET_CLASSES, DATASET_SPECS, DatasetSpec
from contract.methods import METHOD_SPECS, MethodSpec
from contract.metrics import EmbeddingMetrics, MetricEntry
from contract.presets import PRESETS, ZOO_FIELDS, Preset
from contract.records import (
    ACTIVE_STATUSES,
    CAUSE_GUARDS,
    ENDED_EARLY_STATUSES,
    METRICS,
    RUN_STATUSES,
    TERMINAL_STATUSES,
    VERDICT_KINDS,
    VERDICT_LABELS,
    VERDICT_SEVERITY,
    Cause,
    CauseGuard,
    EpochRecord,
    MetricCatalogue,
    Placement,
    RunStatus,
    Trend,
    Verdict,
    VerdictKind,
    metric_catalogue,
)
from contract.strict import StrictInput, StrictModel

__all__ = [
    "ACTIVE_STATUSES",
    "CAUSE_GUARDS",
    "DATASET_CLASSES",
    "DATASET_SPECS",
    "ENDED_EARLY_STATUSES",
    "METHOD_SPECS",
    "METRICS",
    "PLUGIN_DATASETS",
    "PLUGIN_ERRORS",
    "PLUGIN_METHODS",
    "PRESETS",
    "RUN_STATUSES",
    "TERMINAL_STATUSES",
    "VERDICT_KINDS",
    "VERDICT_LABELS",
    "VERDICT_SEVERITY",
    "ZOO_FIELDS",
    "BackboneName",
    "Cause",
    "CauseGuard",
    "DatasetSpec",
    "EmbeddingMetrics",
    "EpochRecord",
    "MethodSpec",
    "MetricCatalogue",
    "MetricEntry",
    "Placement",
    "PluginError",
    "Preset",
    "RunConfig",
    "RunStatus",
    "StrictInput",
    "StrictModel",
    "Trend",
    "Verdict",
    "VerdictKind",
    "metric_catalogue",
    "resolve_config",
]

# Last: plugins extend the catalogue above, and may import these names while they load.
from contract.plugins import (
    PLUGIN_DATASETS,
    PLUGIN_ERRORS,
    PLUGIN_METHODS,
    PluginError,
    install_plugins,
)

install_plugins()

# The run request is built from the catalogue, plugins included.
from contract.requests import resolve_config  # noqa: E402
