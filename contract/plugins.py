"""Method and dataset plugins: what Collapse Lab does not ship, found at start-up.

Two ways to make a method known, read by every process (API, workers, command line):

- an installed package with an entry point in the group ``collapse_lab.methods``, e.g. in
  its ``pyproject.toml``::

      [project.entry-points."collapse_lab.methods"]
      wmse = "wmse_plugin.spec"

- the ``METHOD_PLUGINS`` environment variable: comma-separated importable modules
  (``METHOD_PLUGINS=my_pkg.my_method,other.module``).

The object an entry point names (or each listed module) is a module with ``METHOD_SPEC`` (one
:class:`MethodSpec`) or ``METHOD_SPECS`` (a list), and optionally ``PRESETS`` (a list of
:class:`Preset`), or a :class:`MethodSpec` itself. That module is the plugin's torch-free
half: the API imports it, so it must not import torch; the training class its spec names in
``implementation`` (``"pkg.module:Class"``, a subclass of
``workers.engine.methods.base.Method``) is imported only by the workers.

A dataset plugin is found the same way: an entry point in the group
``collapse_lab.datasets`` or a module listed in ``DATASET_PLUGINS``, naming a module with
``DATASET_SPEC`` (one :class:`DatasetSpec`) or ``DATASET_SPECS`` (a list), or a
:class:`DatasetSpec` itself. Its ``loader`` (``"pkg.module:function"``) is imported by the
workers only (``workers/engine/datasets/__init__.py`` says what it receives and returns).

A broken plugin (import error, not a spec, a name that clashes, options without defaults or
whose JSON Schema fails) never stops a process: it is left out and reported, naming the
plugin, in :data:`PLUGIN_ERRORS` (``GET /api/methods`` lists them).
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, get_args

from contract.datasets import DATASET_SPECS, DatasetSpec, check_dataset_spec, register_dataset
from contract.methods import METHOD_SPECS
from contract.methods.base import Family, MethodSpec
from contract.presets import PRESETS, Preset
from contract.records import VERDICT_KINDS
from contract.strict import StrictInput

ENTRY_POINT_GROUP = "collapse_lab.methods"
PLUGINS_VARIABLE = "METHOD_PLUGINS"
DATASET_ENTRY_POINT_GROUP = "collapse_lab.datasets"
DATASET_PLUGINS_VARIABLE = "DATASET_PLUGINS"
# The runs table keeps method names in 32 characters; lower case keeps URLs and CLI simple.
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
PRESET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
IMPLEMENTATION_PATTERN = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass(frozen=True)
class PluginError:
    """A plugin that could not be loaded, and why (one sentence)."""

    plugin: str
    error: str


@dataclass
class Plugins:
    """What the plugins brought, each with the plugin that defines it: method specs,
    presets, dataset specs, and the plugins that failed."""

    specs: list[tuple[str, MethodSpec]] = field(default_factory=list)
    presets: list[tuple[str, Preset]] = field(default_factory=list)
    datasets: list[tuple[str, DatasetSpec]] = field(default_factory=list)
    errors: list[PluginError] = field(default_factory=list)


def _check_spec(spec: Any, taken: set[str]) -> str | None:
    """Why ``spec`` cannot be a method, or None."""
    if not isinstance(spec, MethodSpec):
        return f"expected a MethodSpec, got {type(spec).__name__}"
    if not isinstance(spec.name, str) or not NAME_PATTERN.match(spec.name):
        return f"method name {spec.name!r} must be lower case letters, digits, - or _ (<= 32)"
    if spec.name in taken:
        return f"method name {spec.name!r} is already taken"
    if spec.family not in get_args(Family):
        return f"family {spec.family!r} is not one of {list(get_args(Family))}"
    if not isinstance(spec.implementation, str) or not IMPLEMENTATION_PATTERN.match(
        spec.implementation
    ):
        return f"implementation {spec.implementation!r} must be 'package.module:ClassName'"
    if not (isinstance(spec.options, type) and issubclass(spec.options, StrictInput)):
        return "options must be a StrictInput subclass (contract)"
    try:
        spec.options()
    except Exception as exc:
        return f"options need a default for every field ({exc.__class__.__name__}: {exc})"
    try:
        spec.options.model_json_schema()
    except Exception as exc:
        return f"the options' JSON Schema fails ({exc.__class__.__name__}: {exc})"
    if not isinstance(spec.defaults, dict):
        return "defaults must be a dict of run-config fields"
    return None


def _check_preset(preset: Any, methods: set[str], taken: set[str]) -> str | None:
    if not isinstance(preset, Preset):
        return f"expected a Preset, got {type(preset).__name__}"
    if not isinstance(preset.name, str) or not PRESET_NAME_PATTERN.match(preset.name):
        return f"preset name {preset.name!r} must be lower case letters, digits, - or _"
    if preset.name in taken:
        return f"preset name {preset.name!r} is already taken"
    if preset.config.get("method") not in methods:
        method = preset.config.get("method")
        return f"preset {preset.name!r} names method {method!r}, not one of this plugin's"
    if preset.expected not in VERDICT_KINDS:
        return f"preset {preset.name!r}: expected must be one of {list(VERDICT_KINDS)}"
    return None


def _listed_specs(module: ModuleType, kind: str, spec_type: str, registry: object) -> list[Any]:
    """The specs a plugin module declares: ``<KIND>_SPEC`` and the list ``<KIND>_SPECS``
    (``kind`` is METHOD or DATASET). A module that imported the registry itself under that
    name has no list of its own."""
    listed = getattr(module, f"{kind}_SPECS", None)
    if listed is registry:
        listed = None
    if listed is not None and not isinstance(listed, list | tuple):
        raise TypeError(f"{module.__name__}.{kind}_SPECS must be a list of {spec_type}")
    specs = list(listed or [])
    if hasattr(module, f"{kind}_SPEC"):
        specs.insert(0, getattr(module, f"{kind}_SPEC"))
    if not specs:
        raise LookupError(f"{module.__name__} defines neither {kind}_SPEC nor {kind}_SPECS")
    return specs


def _contents(loaded: Any) -> tuple[list[Any], list[Any]]:
    """(specs, presets) of what a plugin entry names: a module or a spec."""
    if not isinstance(loaded, ModuleType):
        return [loaded], []
    specs = _listed_specs(loaded, "METHOD", "MethodSpec", METHOD_SPECS)
    return specs, list(getattr(loaded, "PRESETS", []) or [])


def _dataset_contents(loaded: Any) -> list[Any]:
    """The dataset specs of what a dataset plugin entry names: a module or a spec."""
    if not isinstance(loaded, ModuleType):
        return [loaded]
    return _listed_specs(loaded, "DATASET", "DatasetSpec", DATASET_SPECS)


def _sources(modules: str | None, group: str = ENTRY_POINT_GROUP) -> list[tuple[str, Any]]:
    """(plugin name, a loader) for every entry point of ``group`` and every listed module."""
    found: list[tuple[str, Any]] = []
    for point in entry_points(group=group):
        found.append((f"{point.name} (entry point {point.value})", point.load))
    for module in (m.strip() for m in (modules or "").split(",")):
        if module:
            # A plugin is an optional import by nature: only its name is known, at run time.
            found.append((module, lambda m=module: importlib.import_module(m)))
    return found


def load_plugins(
    builtin_methods: set[str], builtin_presets: set[str], modules: str | None = None
) -> Plugins:
    """Load every plugin; ``modules`` defaults to ``$METHOD_PLUGINS``. Never raises."""
    if modules is None:
        modules = os.environ.get(PLUGINS_VARIABLE, "")
    result = Plugins()
    methods, presets = set(builtin_methods), set(builtin_presets)
    for plugin, load in _sources(modules):
        try:
            specs, plugin_presets = _contents(load())
        except Exception as exc:  # a plugin's import may raise anything
            result.errors.append(PluginError(plugin, f"{exc.__class__.__name__}: {exc}"))
            continue
        for spec in specs:
            problem = _check_spec(spec, methods)
            if problem:
                result.errors.append(PluginError(plugin, problem))
                continue
            methods.add(spec.name)
            result.specs.append((plugin, spec))
        for preset in plugin_presets:
            own = {spec.name for source, spec in result.specs if source == plugin}
            problem = _check_preset(preset, own, presets)
            if problem:
                result.errors.append(PluginError(plugin, problem))
                continue
            presets.add(preset.name)
            result.presets.append((plugin, preset))
    return result


def load_dataset_plugins(builtin_datasets: set[str], modules: str | None = None) -> Plugins:
    """Load every dataset plugin; ``modules`` defaults to ``$DATASET_PLUGINS``. Never
    raises; the result has ``datasets`` and ``errors`` only."""
    if modules is None:
        modules = os.environ.get(DATASET_PLUGINS_VARIABLE, "")
    result = Plugins()
    taken = set(builtin_datasets)
    for plugin, load in _sources(modules, DATASET_ENTRY_POINT_GROUP):
        try:
            specs = _dataset_contents(load())
        except Exception as exc:  # a plugin's import may raise anything
            result.errors.append(PluginError(plugin, f"{exc.__class__.__name__}: {exc}"))
            continue
        for spec in specs:
            problem = check_dataset_spec(spec, taken)
            if problem:
                result.errors.append(PluginError(plugin, problem))
                continue
            taken.add(spec.name)
            result.datasets.append((plugin, spec))
    return result


# name -> the plugin that defines it, for the methods and datasets that came from plugins
PLUGIN_METHODS: dict[str, str] = {}
PLUGIN_DATASETS: dict[str, str] = {}
PLUGIN_ERRORS: list[PluginError] = []


def install_plugins(modules: str | None = None, dataset_modules: str | None = None) -> None:
    """Load the plugins into the catalogue (:data:`METHOD_SPECS`, :data:`PRESETS`,
    :data:`DATASET_SPECS`); called once when the run spec is imported, after the built-ins
    are defined, so that a plugin may ``from contract import MethodSpec, Preset,
    StrictInput, DatasetSpec``."""
    plugins = load_plugins(set(METHOD_SPECS), set(PRESETS), modules)
    for plugin, spec in plugins.specs:
        METHOD_SPECS[spec.name] = spec
        PLUGIN_METHODS[spec.name] = plugin
    for _, preset in plugins.presets:
        PRESETS[preset.name] = preset
    PLUGIN_ERRORS.extend(plugins.errors)
    datasets = load_dataset_plugins(set(DATASET_SPECS), dataset_modules)
    for plugin, dataset in datasets.datasets:
        register_dataset(dataset)
        PLUGIN_DATASETS[dataset.name] = plugin
    PLUGIN_ERRORS.extend(datasets.errors)
