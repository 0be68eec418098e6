"""The catalogue of methods, keyed by name: one torch-free spec module per method."""

from __future__ import annotations

from contract.methods.barlow_twins import BARLOW_TWINS_SPEC
from contract.methods.base import Family, MethodSpec
from contract.methods.byol import BYOL_SPEC
from contract.methods.deepcluster import DEEPCLUSTER_SPEC
from contract.methods.dino import DINO_SPEC
from contract.methods.ijepa import IJEPA_SPEC
from contract.methods.lejepa import LEJEPA_SPEC
from contract.methods.simclr import SIMCLR_SPEC
from contract.methods.simsiam import SIMSIAM_SPEC
from contract.methods.swav import SWAV_SPEC
from contract.methods.vicreg import VICREG_SPEC

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
        DINO_SPEC,
        IJEPA_SPEC,
        LEJEPA_SPEC,
    )
}

__all__ = ["METHOD_SPECS", "Family", "MethodSpec"]
