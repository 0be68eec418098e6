"""The training half of every method, keyed by name (the torch-free half, options and
catalogue entry, is :mod:`contract.methods`). Add a method by adding a module here,
its spec module there, and a line in each registry."""

from __future__ import annotations

import importlib

from contract import METHOD_SPECS, PLUGIN_METHODS
from workers.engine.methods.barlow_twins import BarlowTwins
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.methods.byol import BYOL
from workers.engine.methods.deepcluster import DeepCluster
from workers.engine.methods.dino import DINO
from workers.engine.methods.ijepa import IJEPA
from workers.engine.methods.lejepa import LeJEPA
from workers.engine.methods.simclr import SimCLR
from workers.engine.methods.simsiam import SimSiam
from workers.engine.methods.swav import SwAV
from workers.engine.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {
    cls.spec.name: cls
    for cls in (SimCLR, BYOL, SimSiam, SwAV, DeepCluster, BarlowTwins, VICReg, DINO, IJEPA, LeJEPA)
}


class MethodUnavailableError(LookupError):
    """The method is unknown here, or its plugin's training class cannot be imported."""


def method_class(name: str) -> type[Method]:
    """The training class of ``name``: a built-in one, or a plugin's (imported on first use
    from its spec's ``implementation``, "package.module:ClassName")."""
    if name in METHODS:
        return METHODS[name]
    spec = METHOD_SPECS.get(name)
    if spec is None:
        raise MethodUnavailableError(f"method {name!r} is not installed here")
    plugin = PLUGIN_METHODS.get(name, name)
    module_name, _, attribute = spec.implementation.partition(":")
    try:
        # A plugin's torch half is an optional import: only its spec names it, at run time.
        cls = getattr(importlib.import_module(module_name), attribute)
    except Exception as exc:
        raise MethodUnavailableError(
            f"method plugin {plugin}: cannot import {spec.implementation} "
            f"({exc.__class__.__name__}: {exc})"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise MethodUnavailableError(
            f"method plugin {plugin}: {spec.implementation} is not a subclass of "
            "workers.engine.methods.base.Method"
        )
    METHODS[name] = cls
    return cls


__all__ = ["METHODS", "LossOutput", "Method", "MethodUnavailableError", "StepInfo", "method_class"]
