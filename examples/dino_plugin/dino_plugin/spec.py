"""DINO's torch-free half: its options, its catalogue entry and its two presets. The
Collapse Lab API imports this module (entry point ``collapse_lab.methods: dino``), so it
must not import torch; the training class is :mod:`dino_plugin.method`."""

from __future__ import annotations

from pydantic import Field

from contract import MethodSpec, Preset, StrictInput


class DINOOptions(StrictInput):
    centering: bool = Field(
        True,
        description="Subtract a running mean of the teacher's logits before its softmax. Off: "
        "with sharpening alone one output dimension dominates and the embedding collapses.",
    )
    out_dim: int = Field(256, ge=2, le=65536, description="K, the output dimensions (prototypes).")
    teacher_temperature: float = Field(
        0.04, gt=0, le=1, description="Sharpening: the teacher's softmax temperature."
    )
    student_temperature: float = Field(0.1, gt=0, le=1, description="The student's temperature.")
    center_momentum: float = Field(
        0.9, ge=0, lt=1, description="EMA rate of the center (the teacher's mean logits)."
    )
    teacher_momentum: float = Field(
        0.996, ge=0, le=1, description="EMA rate of the teacher's weights (cosine to 1)."
    )


METHOD_SPEC = MethodSpec(
    name="dino",
    title="DINO",
    paper="Caron et al. Emerging Properties in Self-Supervised Vision Transformers. ICCV 2021.",
    family="asymmetry",
    options=DINOOptions,
    defaults={
        "optimizer": "adamw",
        "lr": 1e-3,
        "weight_decay": 0.04,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 128,
    },
    implementation="dino_plugin.method:DINO",
)

PRESETS = [
    Preset(
        "dino",
        "DINO",
        "Self-distillation with centering and sharpening.",
        {"method": "dino"},
        "healthy",
    ),
    Preset(
        "dino-no-centering",
        "DINO without centering",
        "Sharpening alone: one output dimension dominates and the embedding collapses.",
        {"method": "dino", "options": {"centering": False}},
        "complete_collapse",
    ),
]
