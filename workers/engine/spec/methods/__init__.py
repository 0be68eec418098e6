"""The catalogue of methods, keyed by name: one torch-free spec module per method."""

from __future__ import annotations

from workers.engine.spec.methods.barlow_twins import BARLOW_TWINS_SPEC
from workers.engine.spec.methods.base import Family, MethodSpec
from workers.engine.spec.methods.byol import BYOL_SPEC
from workers.engine.spec.methods.deepcluster import DEEPCLUSTER_SPEC
from workers.engine.spec.methods.simclr import SIMCLR_SPEC
from workers.engine.spec.methods.simsiam import SIMSIAM_SPEC
from workers.engine.spec.methods.swav import SWAV_SPEC
from workers.engine.spec.methods.vicreg import VICREG_SPEC

METHOD_SPECS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        SIMCLR_SPEC,
        BYOL_SPEC,
        SIMSIAM_SPEC,
        SWAV_SPEC,
        DEEPCLUSTER_SPEC,
        BARLOW_TWINS_SPEC,
        VICREG_SPEC,
    )
}

__all__ = ["METHOD_SPECS", "Family", "MethodSpec"]
