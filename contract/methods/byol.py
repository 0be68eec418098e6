"""BYOL's torch-free part: its options and catalogue entry (the API reads these).

Grill et al. "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning".
NeurIPS 2020.
The linear and symmetric predictors: Tian, Chen & Ganguli, "Understanding Self-Supervised
Learning Dynamics without Contrastive Pairs", ICML 2021 (arXiv 2102.06810), Sec. 5 and Table 3.
The training code is :mod:`workers.engine.methods.byol`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

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
    predictor_kind: Literal["mlp", "linear", "symmetric"] = Field(
        "mlp",
        description="The predictor's form (with predictor on): mlp, BYOL's two-layer MLP; "
        "linear, one d x d matrix W_p without bias; symmetric, W_p = (W + W^T)/2, the "
        "symmetric linear predictor of Tian, Chen & Ganguli (ICML 2021, Table 3), whose "
        "collapse they tie to a too-fast EMA target. In the 10-epoch runs of docs/causes.md "
        "both linear forms collapsed whatever the EMA momentum.",
    )

    @model_validator(mode="after")
    def _kind_needs_predictor(self) -> BYOLOptions:
        if not self.predictor and self.predictor_kind != "mlp":
            raise ValueError(
                f"predictor_kind {self.predictor_kind!r} needs predictor true (there is no "
                "predictor to shape)"
            )
        return self


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
    collapsed_loss=0.0,  # 2 - 2 cos(p, z) with p = z
)
