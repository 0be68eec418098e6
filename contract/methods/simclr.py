"""SimCLR's torch-free part: its options and catalogue entry (the API reads these).

Chen, Kornblith, Norouzi, Hinton. "A Simple Framework for Contrastive Learning of Visual
Representations". ICML 2020.
The training code is :mod:`workers.engine.methods.simclr`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class SimCLROptions(StrictInput):
    temperature: float = Field(
        0.5, gt=0, le=10, description="Softmax temperature of NT-Xent (0.5 for CIFAR in the paper)."
    )
    negatives: bool = Field(
        True,
        description="Contrast against the 2N-2 other views in the batch. Off: only the "
        "positive-pair alignment term is left, and the embedding collapses.",
    )


SIMCLR_SPEC = MethodSpec(
    name="simclr",
    title="SimCLR",
    paper=(
        "Chen, Kornblith, Norouzi, Hinton. A Simple Framework for Contrastive Learning of "
        "Visual Representations. ICML 2020."
    ),
    family="contrastive",
    options=SimCLROptions,
    defaults={
        "optimizer": "sgd",
        "lr": 0.3,
        "weight_decay": 1e-4,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.simclr:SimCLR",
)
