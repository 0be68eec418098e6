"""The training half of every method, keyed by name (the torch-free half, options and
catalogue entry, is :mod:`workers.engine.spec.methods`). Add a method by adding a module here,
its spec module there, and a line in each registry."""

from __future__ import annotations

from workers.engine.methods.barlow_twins import BarlowTwins
from workers.engine.methods.base import LossOutput, Method, StepInfo
from workers.engine.methods.byol import BYOL
from workers.engine.methods.deepcluster import DeepCluster
from workers.engine.methods.simclr import SimCLR
from workers.engine.methods.simsiam import SimSiam
from workers.engine.methods.swav import SwAV
from workers.engine.methods.vicreg import VICReg

METHODS: dict[str, type[Method]] = {
    cls.spec.name: cls for cls in (SimCLR, BYOL, SimSiam, SwAV, DeepCluster, BarlowTwins, VICReg)
}

__all__ = ["METHODS", "LossOutput", "Method", "StepInfo"]
