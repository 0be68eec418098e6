"""BarlowTwins's torch-free part: its options and catalogue entry (the API reads these).

Zbontar, Jing, Misra, LeCun, Deny. "Barlow Twins: Self-Supervised Learning via Redundancy
Reduction". ICML 2021.
The training code is :mod:`workers.engine.methods.barlow_twins`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class BarlowTwinsOptions(StrictInput):
    lambda_offdiag: float = Field(
        0.05,
        ge=0,
        le=10,
        description="Weight of the redundancy-reduction (off-diagonal) term. The paper's 5e-3 is "
        "for d = 8192; the default d = 128 has 4000x fewer off-diagonal terms and needs a larger "
        "weight (with 5e-3 a short CPU run kept an effective rank of only 13 of 128, with 0.05 "
        "35). 0 leaves only the invariance term and the dimensions become redundant.",
    )


BARLOW_TWINS_SPEC = MethodSpec(
    name="barlow_twins",
    title="Barlow Twins",
    paper=(
        "Zbontar, Jing, Misra, LeCun, Deny. Barlow Twins: Self-Supervised Learning via "
        "Redundancy Reduction. ICML 2021."
    ),
    family="redundancy",
    options=BarlowTwinsOptions,
    defaults={
        "optimizer": "lars",
        "lr": 0.3,
        "weight_decay": 1e-4,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.barlow_twins:BarlowTwins",
)
