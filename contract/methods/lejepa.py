"""LeJEPA's torch-free part: its options and catalogue entry (the API reads these).

Balestriero, LeCun. "LeJEPA: Provable and Scalable Self-Supervised Learning Without the
Heuristics". arXiv 2511.08544, 2025.
The training code is :mod:`workers.engine.methods.lejepa`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class LeJEPAOptions(StrictInput):
    sigreg_weight: float = Field(
        0.05,
        ge=0,
        le=1,
        description="lambda: the loss is (1 - lambda) * prediction + lambda * SIGReg (the paper "
        "uses 0.05, exploring 0.01-0.1). 0: nothing but the views' agreement is left, and "
        "every image maps to one point.",
    )
    num_projections: int = Field(
        256,
        ge=1,
        le=8192,
        description="Random 1-D directions SIGReg tests for Gaussianity at every step "
        "(drawn afresh each step; 256 in the paper's listing, 1024 in lightly's default).",
    )
    views: int = Field(
        4,
        ge=2,
        le=10,
        description="Views per image: 2 global views, whose mean is the prediction target, "
        "and views - 2 local crops at half resolution (the paper: 2 + 6 or 8).",
    )


LEJEPA_SPEC = MethodSpec(
    name="lejepa",
    title="LeJEPA",
    paper=(
        "Balestriero, LeCun. LeJEPA: Provable and Scalable Self-Supervised Learning Without "
        "the Heuristics. arXiv 2511.08544, 2025."
    ),
    family="redundancy",
    options=LeJEPAOptions,
    defaults={
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 0.05,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.lejepa:LeJEPA",
    z_description=(
        "The projector's output: the embedding SIGReg pulls towards an isotropic Gaussian "
        "and the prediction term pulls together across views."
    ),
)
