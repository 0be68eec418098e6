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
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any, Generic, TypeVar, get_args

from contract.datasets import (
    DATASET_SPECS,
    IMPORT_PATH_PATTERN,
    NAME_PATTERN,
    NAME_RULE,
    DatasetSpec,
    check_dataset_spec,
    register_dataset,
)
from contract.methods import METHOD_SPECS
from contract.methods.base import Family, MethodSpec
from contract.presets import PRESETS, Preset
from contract.records import VERDICT_KINDS
from contract.strict import StrictInput

ENTRY_POINT_GROUP = "collapse_lab.methods"
PLUGINS_VARIABLE = "METHOD_PLUGINS"
DATASET_ENTRY_POINT_GROUP = "collapse_lab.datasets"
DATASET_PLUGINS_VARIABLE = "DATASET_PLUGINS"
PRESET_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


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


def _check_spec(spec: MethodSpec, taken: Collection[str]) -> str | None:
    """Why ``spec`` cannot be a method, or None."""
    if not isinstance(spec.name, str) or not NAME_PATTERN.match(spec.name):
        return f"method name {spec.name!r} {NAME_RULE}"
    if spec.name in taken:
        return f"method name {spec.name!r} is already taken"
    if spec.family not in get_args(Family):
        return f"family {spec.family!r} is not one of {list(get_args(Family))}"
    if not isinstance(spec.implementation, str) or not IMPORT_PATH_PATTERN.match(
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


Spec = TypeVar("Spec", MethodSpec, DatasetSpec)


@dataclass(frozen=True)
class PluginKind(Generic[Spec]):
    """One kind of plugin, read by :func:`_load`: where it is found, how its module declares
    its specs (``<PREFIX>_SPEC`` and the list ``<PREFIX>_SPECS``) and what else it may bring
    (``extras``: the name of a list, read with the specs)."""

    prefix: str  # METHOD or DATASET
    spec_type: type[Spec]
    group: str  # the entry-point group
    variable: str  # the environment variable listing modules
    registry: Mapping[str, Spec]  # the catalogue: a module that imported it has no list
    check: Callable[[Spec, Collection[str]], str | None]  # why a spec cannot join, or None
    extras: str | None = None


_METHODS = PluginKind(
    "METHOD", MethodSpec, ENTRY_POINT_GROUP, PLUGINS_VARIABLE, METHOD_SPECS, _check_spec, "PRESETS"
)
_DATASETS = PluginKind(
    "DATASET",
    DatasetSpec,
    DATASET_ENTRY_POINT_GROUP,
    DATASET_PLUGINS_VARIABLE,
    DATASET_SPECS,
    check_dataset_spec,
)


def _listed_specs(module: ModuleType, kind: PluginKind[Spec]) -> list[Any]:
    """The specs a plugin module declares: ``<PREFIX>_SPEC`` and the list ``<PREFIX>_SPECS``.
    A module that imported the registry itself under that name has no list of its own."""
    listed = getattr(module, f"{kind.prefix}_SPECS", None)
    if listed is kind.registry:
        listed = None
    if listed is not None and not isinstance(listed, list | tuple):
        name = kind.spec_type.__name__
        raise TypeError(f"{module.__name__}.{kind.prefix}_SPECS must be a list of {name}")
    specs = list(listed or [])
    if hasattr(module, f"{kind.prefix}_SPEC"):
        specs.insert(0, getattr(module, f"{kind.prefix}_SPEC"))
    if not specs:
        raise LookupError(
            f"{module.__name__} defines neither {kind.prefix}_SPEC nor {kind.prefix}_SPECS"
        )
    return specs


def _contents(loaded: Any, kind: PluginKind[Spec]) -> tuple[list[Any], list[Any]]:
    """(specs, extras) of what a plugin entry names: a module or a spec."""
    if not isinstance(loaded, ModuleType):
        return [loaded], []
    extras = getattr(loaded, kind.extras, []) if kind.extras else []
    return _listed_specs(loaded, kind), list(extras or [])


def _sources(modules: str, group: str) -> list[tuple[str, Any]]:
    """(plugin name, a loader) for every entry point of ``group`` and every listed module."""
    found: list[tuple[str, Any]] = []
    for point in entry_points(group=group):
        found.append((f"{point.name} (entry point {point.value})", point.load))
    for module in (m.strip() for m in modules.split(",")):
        if module:
            # A plugin is an optional import by nature: only its name is known, at run time.
            found.append((module, lambda m=module: importlib.import_module(m)))
    return found


def _load(
    kind: PluginKind[Spec], taken: Collection[str], modules: str | None, errors: list[PluginError]
) -> Iterator[tuple[str, list[Spec], list[Any]]]:
    """For every plugin of ``kind`` (``modules`` defaults to the environment variable): its
    name, its specs that passed the check (in order, each name then taken) and its extras.
    A plugin that fails to load, or a spec refused, is added to ``errors``. Never raises."""
    if modules is None:
        modules = os.environ.get(kind.variable, "")
    names = set(taken)
    for plugin, load in _sources(modules, kind.group):
        try:
            specs, extras = _contents(load(), kind)
        except Exception as exc:  # a plugin's import may raise anything
            errors.append(PluginError(plugin, f"{exc.__class__.__name__}: {exc}"))
            continue
        accepted: list[Spec] = []
        for spec in specs:
            problem = (
                kind.check(spec, names)
                if isinstance(spec, kind.spec_type)
                else f"expected a {kind.spec_type.__name__}, got {type(spec).__name__}"
            )
            if problem:
                errors.append(PluginError(plugin, problem))
                continue
            names.add(spec.name)
            accepted.append(spec)
        yield plugin, accepted, extras


def load_plugins(
    builtin_methods: set[str], builtin_presets: set[str], modules: str | None = None
) -> Plugins:
    """Load every method plugin; ``modules`` defaults to ``$METHOD_PLUGINS``. Never raises;
    the result has ``specs``, ``presets`` and ``errors``."""
    result = Plugins()
    presets = set(builtin_presets)
    for plugin, specs, plugin_presets in _load(_METHODS, builtin_methods, modules, result.errors):
        result.specs.extend((plugin, spec) for spec in specs)
        own = {spec.name for spec in specs}
        for preset in plugin_presets:
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
    result = Plugins()
    for plugin, specs, _ in _load(_DATASETS, builtin_datasets, modules, result.errors):
        result.datasets.extend((plugin, spec) for spec in specs)
    return result


# name -> the plugin that defines it, for the methods and datasets that came from plugins
PLUGIN_METHODS: dict[str, str] = {}
PLUGIN_DATASETS: dict[str, str] = {}
PLUGIN_ERRORS: list[PluginError] = []


def install_plugins() -> None:
    """Load the plugins into the catalogue (:data:`METHOD_SPECS`, :data:`PRESETS`,
    :data:`DATASET_SPECS`); called once when the run spec is imported, after the built-ins
    are defined, so that a plugin may ``from contract import MethodSpec, Preset,
    StrictInput, DatasetSpec``. The plugins are those ``$METHOD_PLUGINS`` and
    ``$DATASET_PLUGINS`` name, and the installed packages' entry points."""
    plugins = load_plugins(set(METHOD_SPECS), set(PRESETS))
    for plugin, spec in plugins.specs:
        METHOD_SPECS[spec.name] = spec
        PLUGIN_METHODS[spec.name] = plugin
    for _, preset in plugins.presets:
        PRESETS[preset.name] = preset
    PLUGIN_ERRORS.extend(plugins.errors)
    datasets = load_dataset_plugins(set(DATASET_SPECS))
    for plugin, dataset in datasets.datasets:
        register_dataset(dataset)
        PLUGIN_DATASETS[dataset.name] = plugin
    PLUGIN_ERRORS.extend(datasets.errors)
