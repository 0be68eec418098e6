"""SwAV's torch-free part: its options and catalogue entry (the API reads these).

Caron, Misra, Mairal, Goyal, Bojanowski, Joulin. "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments". NeurIPS 2020.
The training code is :mod:`workers.engine.methods.swav`.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class SwAVOptions(StrictInput):
    num_prototypes: int = Field(
        30,
        ge=2,
        le=10_000,
        description="Number of learnable prototypes K (cluster centres); 3000 in the paper for "
        "ImageNet, 30 here so a short CPU run leaves the uniform-prediction plateau (loss log K).",
    )
    sinkhorn: bool = Field(
        True,
        description="Compute the codes with Sinkhorn-Knopp equipartition. Off: codes are a "
        "plain softmax of the scores, and every sample drifts to one prototype.",
    )
    epsilon: float = Field(
        0.03,
        gt=0,
        le=1,
        description="Entropy regularisation of the codes (0.05 in the paper). Too large and the "
        "codes are near uniform: all samples get every prototype equally and the run stalls.",
    )
    sinkhorn_iterations: int = Field(3, ge=1, le=100, description="Sinkhorn-Knopp iterations.")
    temperature: float = Field(0.1, gt=0, le=10, description="Temperature of the predictions.")
    queue_length: int = Field(
        0,
        ge=0,
        le=65_536,
        description="Past embeddings kept to enlarge the Sinkhorn batch (0 = no queue; "
        "helpful when the batch is much smaller than the number of prototypes).",
    )
    local_crops: int = Field(
        0, ge=0, le=8, description="Extra small multi-crop views per image (0 = two views)."
    )


SWAV_SPEC = MethodSpec(
    name="swav",
    title="SwAV",
    paper=(
        "Caron et al. Unsupervised Learning of Visual Features by Contrasting Cluster "
        "Assignments. NeurIPS 2020."
    ),
    family="clustering",
    options=SwAVOptions,
    defaults={
        "optimizer": "sgd",
        "lr": 0.05,
        "weight_decay": 1e-5,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.swav:SwAV",
    z_description=(
        "The projector's output, the embedding the codes are computed from (l2-normalised "
        "before the prototypes); the prototype scores give the assignment panel."
    ),
)
