"""VICReg's torch-free part: its options and catalogue entry (the API reads these).

Bardes, Ponce, LeCun. "VICReg: Variance-Invariance-Covariance Regularization for
Self-Supervised Learning". ICLR 2022.
The training code is :mod:`workers.engine.methods.vicreg`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class VICRegOptions(StrictInput):
    invariance_weight: float = Field(
        25.0, ge=0, le=1000, description="lambda: weight of the mean-squared distance term."
    )
    variance_weight: float = Field(
        25.0,
        ge=0,
        le=1000,
        description="mu: weight of the hinge keeping each dimension's std above 1. "
        "0: nothing stops the embedding collapsing to a point.",
    )
    covariance_weight: float = Field(
        1.0,
        ge=0,
        le=1000,
        description="nu: weight of the off-diagonal covariance penalty. "
        "0: dimensions become correlated (dimensional collapse).",
    )


VICREG_SPEC = MethodSpec(
    name="vicreg",
    title="VICReg",
    paper=(
        "Bardes, Ponce, LeCun. VICReg: Variance-Invariance-Covariance Regularization for "
        "Self-Supervised Learning. ICLR 2022."
    ),
    family="redundancy",
    options=VICRegOptions,
    defaults={
        "optimizer": "lars",
        "lr": 0.3,
        "weight_decay": 1e-4,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.vicreg:VICReg",
)
