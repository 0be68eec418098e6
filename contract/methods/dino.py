"""DINO's torch-free part: its options and catalogue entry (the API reads these).

Caron, Touvron, Misra, Jégou, Mairal, Bojanowski, Joulin. "Emerging Properties in
Self-Supervised Vision Transformers". ICCV 2021 (arXiv 2104.14294).
The training code is :mod:`workers.engine.methods.dino`.

A student matches the softmax of a momentum teacher over K prototypes. Two operations on the
teacher's output keep it from collapsing (paper Sec. 3.1, Sec. 5.3 and Fig. 7): *centering*
(subtract a running mean of the teacher's logits, so no prototype can dominate) and
*sharpening* (a teacher temperature below the student's, so the output cannot become
uniform); the momentum teacher is the third guard (Sec. 5.2, Fig. 6: a teacher that is a copy
of the student collapses). Each option below switches one off or weakens it.

What the diagnostics measure as ``z``: the student's ℓ2-normalised bottleneck (``proj_dim``),
the embedding the K prototypes score. Not the K logits: they share a large common offset (the
centre the teacher subtracts), so their normalised rows look alike even in a healthy run.
The distribution over the prototypes, where centering and sharpening act, is measured by the
mechanism signals (teacher entropy, teacher-student KL) and the cluster fields.
"""

from __future__ import annotations

from pydantic import Field

from contract.methods.base import MethodSpec
from contract.strict import StrictInput


class DINOOptions(StrictInput):
    num_prototypes: int = Field(
        1024,
        ge=2,
        le=65_536,
        description="K, the output dimensions of the DINO head (prototypes); 65536 in the "
        "paper. A collapsed run's loss sits at ln K.",
    )
    centering: bool = Field(
        True,
        description="Subtract the centre (a running mean of the teacher's logits) before the "
        "teacher's softmax. Off: sharpening alone makes one prototype dominate (teacher "
        "entropy -> 0) and the embedding collapses.",
    )
    center_momentum: float = Field(
        0.9,
        ge=0,
        lt=1,
        description="EMA rate m of the centre: c <- m c + (1 - m) mean(teacher logits).",
    )
    teacher_temperature: float = Field(
        0.04,
        gt=0,
        le=10,
        description="Sharpening: the teacher's softmax temperature after the warm-up (0.04 "
        "to 0.07 in the paper). Equal to the student's (0.1): no sharpening, the teacher's "
        "output drifts to uniform (entropy -> ln K).",
    )
    warmup_teacher_temperature: float = Field(
        0.04,
        gt=0,
        le=10,
        description="The teacher's temperature at epoch 1, raised linearly to "
        "teacher_temperature over warmup_teacher_temperature_epochs (unused without a "
        "warm-up).",
    )
    warmup_teacher_temperature_epochs: int = Field(
        0, ge=0, le=1000, description="Epochs of the teacher temperature's linear warm-up."
    )
    student_temperature: float = Field(
        0.1, gt=0, le=10, description="The student's softmax temperature."
    )
    teacher_momentum: float = Field(
        0.99,
        ge=0,
        le=1,
        description="Base EMA rate of the teacher's weights, raised to 1 by a cosine schedule "
        "(0.996 in the paper, for 100 epochs of ImageNet: a short run needs a faster teacher). "
        "0 = the teacher is a copy of the student (no schedule; the paper's 'student copy', "
        "which collapses); 1 = the teacher stays at its initialisation.",
    )
    local_views: int = Field(
        2,
        ge=0,
        le=10,
        description="Multi-crop: small local views per image (half the side, 5-40% of the "
        "area), seen by the student only; the two global views go through both networks.",
    )
    freeze_last_layer_epochs: int = Field(
        1,
        ge=0,
        le=1000,
        description="Epochs during which the head's last (weight-normalised) layer is not "
        "trained, which the paper does to stabilise the start.",
    )
    norm_last_layer: bool = Field(
        True,
        description="Fix the norm of each prototype of the last layer to 1 (the paper's "
        "default); off, the norms are trained too.",
    )
    head_init_std: float = Field(
        0.02,
        gt=0,
        le=1,
        description="Standard deviation of the truncated normal that initialises the head's "
        "MLP weights (biases 0). 0.02 is the authors' (sized for a ViT-S: LayerNorm'd "
        "384-d features through 2048-wide layers, a bottleneck of norm about 1.4 before "
        "its normalisation). With a small CNN and 512-wide layers it gives a bottleneck of "
        "norm 0.04, which the first few dozen AdamW steps on its bias and weights outgrow: "
        "every image's z turns the same way whatever the teacher's target. The CPU presets "
        "use 0.1.",
    )


DINO_SPEC = MethodSpec(
    name="dino",
    title="DINO",
    paper=("Caron et al. Emerging Properties in Self-Supervised Vision Transformers. ICCV 2021."),
    family="distillation",
    options=DINOOptions,
    defaults={
        "backbone": "vit_tiny",
        "optimizer": "adamw",
        "lr": 5e-4,
        "weight_decay": 0.04,
        "warmup_epochs": 1,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="workers.engine.methods.dino:DINO",
    z_description=(
        "The head's l2-normalised bottleneck, not the K prototype logits: those share the "
        "centre's large common offset, so their normalised rows look alike in any run. The "
        "teacher's and student's probabilities over the K prototypes give the DINO panel."
    ),
)
