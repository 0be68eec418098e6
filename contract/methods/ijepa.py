"""I-JEPA's torch-free part: its options and catalogue entry (the API reads these).

Assran, Duval, Misra, Bojanowski, Vincent, Rabbat, LeCun, Ballas. "Self-Supervised Learning
from Images with a Joint-Embedding Predictive Architecture". CVPR 2023.
The training code is :mod:`workers.engine.methods.ijepa`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class IJEPAOptions(StrictInput):
    target_momentum: float = Field(
        0.996,
        ge=0,
        le=1,
        description="EMA momentum of the target encoder, raised linearly to 1 over training "
        "(paper: 0.996). 0 = no EMA: the target is the context encoder itself at every step; "
        "1 = the target stays at its random initialisation.",
    )
    stop_gradient: bool = Field(
        True,
        description="No gradient through the target features. Off: the loss also moves the "
        "target branch, which trains the encoder only when target_momentum is 0 (an EMA "
        "target's weights are never trained by gradients).",
    )
    predictor_depth: int = Field(
        3, ge=1, le=12, description="Transformer blocks of the predictor (the paper: 6-12)."
    )
    predictor_width: int = Field(
        96,
        ge=32,
        le=1024,
        multiple_of=32,
        description="Width of the narrow predictor (heads of 32 channels); the paper's is "
        "384 for ViT encoders of 1024-1280.",
    )
    num_targets: int = Field(4, ge=1, le=8, description="Target blocks per image (the paper: 4).")
    augmentation: Literal["simclr", "crop"] = Field(
        "simclr",
        description="Its one view per image: 'crop' is the paper's (a random resized crop "
        "of 0.3-1 of the image, nothing else); 'simclr' adds flips, colour jitter and "
        "grayscale, which keep the ijepa preset's pooled target features apart on small "
        "images (with the crop alone their std·√d fell to 0.10 in 20 epochs on digits).",
    )
    loss: Literal["smooth_l1", "l2"] = Field(
        "smooth_l1",
        description="Distance between predicted and (layer-normed) target patch features: "
        "smooth L1 as in the authors' code, or the squared L2 of the paper's Eq. 1.",
    )


IJEPA_SPEC = MethodSpec(
    name="ijepa",
    title="I-JEPA",
    paper=(
        "Assran et al. Self-Supervised Learning from Images with a Joint-Embedding "
        "Predictive Architecture. CVPR 2023."
    ),
    family="asymmetry",
    options=IJEPAOptions,
    defaults={
        "backbone": "vit_tiny",
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.04,
        "warmup_epochs": 1,
        "batch_size": 128,
        # Each probe and kNN-bank image passes through two full encoders (context and
        # target) while a training image costs about one: 1,024 keep I-JEPA's diagnostics
        # within 5 % of a CIFAR-sized epoch (README, "Mechanism panels: why it collapses",
        # its cost paragraph).
        "probe_size": 1024,
    },
    implementation="workers.engine.methods.ijepa:IJEPA",
    backbones=("vit_tiny",),  # it predicts patch tokens: forward_tokens
    z_description=(
        "The target encoder's mean patch token (there is no projector): the features the "
        "predictor regresses onto, trivial to predict once they are alike for every image, "
        "and the encoder the paper evaluates; h is the context encoder's."
    ),
)
