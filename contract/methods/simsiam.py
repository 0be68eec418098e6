"""SimSiam's torch-free part: its options and catalogue entry (the API reads these).

Chen, He. "Exploring Simple Siamese Representation Learning". CVPR 2021.
The training code is :mod:`workers.engine.methods.simsiam`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class SimSiamOptions(StrictInput):
    stop_gradient: bool = Field(
        True,
        description="Treat the other branch's projection as a constant. Off: gradients flow "
        "through both branches and the output collapses to a constant (loss -> -1).",
    )
    predictor: bool = Field(
        True,
        description="Bottleneck MLP predictor on top of the projector. Off: the projections "
        "are compared directly, and the embedding collapses.",
    )


SIMSIAM_SPEC = MethodSpec(
    name="simsiam",
    title="SimSiam",
    paper="Chen, He. Exploring Simple Siamese Representation Learning. CVPR 2021.",
    family="asymmetry",
    options=SimSiamOptions,
    defaults={
        "optimizer": "sgd",
        "lr": 0.2,
        "weight_decay": 5e-4,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
        "pred_hidden_dim": 64,
    },
    implementation="workers.engine.methods.simsiam:SimSiam",
    collapsed_loss=-1.0,  # -cos(p, z) with p = z
)
