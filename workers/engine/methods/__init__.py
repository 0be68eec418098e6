"""The registry of SSL methods, keyed by name. Add a method by adding a module and a line here."""

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
    cls.name: cls for cls in (SimCLR, BYOL, SimSiam, SwAV, DeepCluster, BarlowTwins, VICReg)
}

__all__ = ["METHODS", "LossOutput", "Method", "StepInfo"]
