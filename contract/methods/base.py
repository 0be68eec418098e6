"""What the catalogue knows about a method without importing its training code."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from contract.strict import StrictInput

Family = Literal["contrastive", "clustering", "asymmetry", "redundancy", "distillation", "other"]


@dataclass(frozen=True)
class MethodSpec:
    """A method's torch-free half: the API validates run configs and renders the Launch form
    from it; workers import ``implementation`` (``"package.module:ClassName"``, a subclass of
    :class:`workers.engine.methods.Method`) to train it.

    ``options`` is the pydantic model of the method's options (defaults and help texts; the
    switches that make it collapse live here); ``defaults`` are the run-config fields the
    method prefers (lr, optimiser, dimensions...).
    """

    name: str
    title: str
    paper: str
    family: Family
    options: type[StrictInput]
    implementation: str
    defaults: dict[str, Any] = field(default_factory=dict)
    # the backbones it can train (RunConfig.backbone names); empty: any of them
    backbones: tuple[str, ...] = ()
    # what the diagnostics' z (the probe's embedding) is for this method, and why
    z_description: str = (
        "The projector's output: the embedding the loss acts on, where collapse shows first."
    )
    # the loss at the trivial solution (every image the same embedding), drawn on the loss
    # chart (the loss metric's collapse_loss level, contract/records.py); None: none is known
    collapsed_loss: float | None = None
