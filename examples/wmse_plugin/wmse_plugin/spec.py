"""W-MSE's torch-free half: its options, its catalogue entry and its two presets. The
Collapse Lab API imports this module (entry point ``collapse_lab.methods: wmse``), so it
must not import torch; the training class is :mod:`wmse_plugin.method`."""

from __future__ import annotations

from pydantic import Field

from contract import MethodSpec, Preset, StrictInput


class WMSEOptions(StrictInput):
    whitening: bool = Field(
        True,
        description="Whiten each sub-batch's embeddings before the MSE of the positives. "
        "Off: only the positives' agreement is left and the embedding collapses to a point.",
    )
    whitening_size: int = Field(
        64,
        ge=4,
        le=4096,
        description="Images per whitened sub-batch (the paper: 128 for 64-d embeddings); must "
        "exceed the embedding dimension proj_dim, or the covariance is singular.",
    )
    whitening_iterations: int = Field(
        1,
        ge=1,
        le=16,
        description="Random sub-batch partitions per step, their losses averaged (W-MSE's w_iter).",
    )


METHOD_SPEC = MethodSpec(
    name="wmse",
    title="W-MSE",
    paper=(
        "Ermolov, Siarohin, Sangineto, Sebe. Whitening for Self-Supervised Representation "
        "Learning. ICML 2021."
    ),
    family="redundancy",
    options=WMSEOptions,
    defaults={
        "optimizer": "adamw",
        "lr": 2e-3,
        "weight_decay": 1e-6,
        "batch_size": 128,
        "proj_hidden_dim": 512,
        "proj_dim": 32,
    },
    implementation="wmse_plugin.method:WMSE",
)

PRESETS = [
    Preset(
        "wmse",
        "W-MSE",
        "MSE of the positives after whitening each sub-batch.",
        {"method": "wmse"},
        "healthy",
    ),
    Preset(
        "wmse-no-whitening",
        "W-MSE without whitening",
        "The MSE of normalised positives alone: every image maps to one point.",
        {"method": "wmse", "options": {"whitening": False}},
        "complete_collapse",
    ),
]
