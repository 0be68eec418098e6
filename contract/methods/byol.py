"""BYOL's torch-free part: its options and catalogue entry (the API reads these).

Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning".
NeurIPS 2020.
The training code is :mod:`workers.engine.methods.byol`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class BYOLOptions(StrictInput):
    base_momentum: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Base EMA momentum tau of the target network, raised to 1 by a cosine "
        "schedule. 0 = no EMA: the target is the online network at every step (the schedule "
        "is then not applied); 1 = the target stays frozen at its random initialisation.",
    )
    predictor: bool = Field(
        True,
        description="Predictor MLP on the online branch. Off: the online projection regresses "
        "the target projection directly, and the embedding collapses.",
    )


BYOL_SPEC = MethodSpec(
    name="byol",
    title="BYOL",
    paper=(
        "Grill et al. Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning. "
        "NeurIPS 2020."
    ),
    family="asymmetry",
    options=BYOLOptions,
    defaults={
        "optimizer": "sgd",
        "lr": 0.3,
        "weight_decay": 1e-5,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
        "pred_hidden_dim": 512,
    },
    implementation="workers.engine.methods.byol:BYOL",
)
