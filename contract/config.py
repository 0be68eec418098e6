"""Run configuration: one pydantic model validated before anything trains.

A run is described by a JSON object such as
``{"method": "simsiam", "dataset": "digits", "epochs": 20, "options": {"stop_gradient": false}}``
or ``{"preset": "simsiam-no-stopgrad", "epochs": 30}``: a run request
(:mod:`contract.requests`), whose :func:`~contract.requests.resolve_config` merges, in order,
the generic defaults, the method's own defaults, the preset and the user's fields, and
validates the result into a RunConfig. Unknown fields anywhere (including inside ``options``)
are errors.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from contract.datasets import DATASET_SPECS, dataset_path_problem, known_dataset
from contract.methods import METHOD_SPECS
from contract.strict import StrictInput, error_message

BackboneName = Literal["small_cnn", "resnet18", "vit_tiny"]


def _dataset_choices(schema: dict[str, Any]) -> None:
    """The registry's datasets as the field's JSON Schema enum (the Launch form's choices),
    read when the schema is generated: after the dataset plugins have joined."""
    schema["enum"] = list(DATASET_SPECS)


class RunRules(StrictInput):
    """The rules across run fields, declared once: :class:`RunConfig` and every method's run
    request (contract/requests.py, which copies RunConfig's fields but not its validators)
    inherit them, so a new cross-field check is written here only. A rule about one field
    is a field validator, so that its error is located at that field (an HTTP 422's ``loc``
    ends with it); one about several fields at once is located at the run."""

    @field_validator("dataset_path", check_fields=False)
    @classmethod
    def _dataset_path_fits(cls, path: str | None, info: ValidationInfo) -> str | None:
        problem = dataset_path_problem(info.data.get("dataset"), path)
        if problem:
            raise PydanticCustomError("missing" if path is None else "value_error", problem)
        return path

    @field_validator("backbone", check_fields=False)
    @classmethod
    def _backbone_trainable(cls, backbone: str, info: ValidationInfo) -> str:
        method = info.data.get("method") or getattr(cls, "method_name", None)
        spec = METHOD_SPECS.get(method) if isinstance(method, str) else None
        if spec is not None and spec.backbones and backbone not in spec.backbones:
            raise ValueError(
                f"{spec.title} trains only on {' or '.join(map(repr, spec.backbones))}, "
                f"not {backbone!r}"
            )
        return backbone

    @model_validator(mode="after")
    def _vit_shape(self) -> Self:
        problem = _vit_shape_problem(self)
        if problem:
            raise ValueError(problem)
        return self


def _vit_shape_problem(config: Any) -> str | None:
    """Why a vit_tiny config (a RunConfig or a run request) cannot be built, or None."""
    if config.backbone != "vit_tiny":
        return None
    if config.vit_dim % config.vit_heads:
        return f"vit_dim {config.vit_dim} must be a multiple of vit_heads {config.vit_heads}"
    # multi-crop's local views are half the side and still need one patch
    if config.image_size // 2 < config.patch_size:
        return (
            f"patch_size {config.patch_size} is larger than half the image_size {config.image_size}"
        )
    return None


class RunConfig(RunRules):
    """Everything needed to reproduce one training run."""

    method: str = Field(description="Method name from the registry, e.g. 'simsiam'.")
    preset: str | None = Field(None, description="Preset this config was derived from, if any.")
    dataset: Annotated[str, AfterValidator(known_dataset)] = Field(
        "digits",
        description="Dataset name from the registry (contract/datasets.py), e.g. 'digits'.",
        json_schema_extra=_dataset_choices,
    )
    dataset_path: str | None = Field(
        None,
        title="Dataset folder",
        description="For a dataset read from a folder ('imagefolder'): a folder relative to "
        "the data root.",
        validate_default=True,  # so "imagefolder" without a path is caught (RunRules)
    )
    image_size: int = Field(
        32,
        title="Image size (px)",
        ge=16,
        le=224,
        description="Side of the square training images.",
    )
    train_size: int | None = Field(
        None,
        title="Training images",
        ge=64,
        le=1_000_000,
        description="Use at most this many training images.",
    )
    probe_size: int = Field(
        2048,
        title="Probe images",
        ge=64,
        le=20_000,
        description="Held-out images the diagnostics are computed on.",
    )
    backbone: BackboneName = Field("small_cnn", description="The encoder whose output is h.")
    width: int = Field(
        32, title="Backbone width", ge=8, le=256, description="Base channel count of small_cnn."
    )
    patch_size: int = Field(
        4,
        title="ViT patch size (px)",
        ge=2,
        le=32,
        description="vit_tiny: side of the square patches (4: 8x8 at 32 px).",
    )
    vit_dim: int = Field(
        192, title="ViT width", ge=16, le=1024, description="vit_tiny: token width (rep_dim)."
    )
    vit_depth: int = Field(
        6, title="ViT blocks", ge=1, le=24, description="vit_tiny: transformer blocks."
    )
    vit_heads: int = Field(
        3, title="ViT heads", ge=1, le=16, description="vit_tiny: attention heads."
    )
    proj_hidden_dim: int = Field(
        512, title="Projector hidden dim", ge=8, le=8192, description="Projector hidden width."
    )
    proj_dim: int = Field(
        128,
        title="Projector output dim d",
        ge=2,
        le=8192,
        description="Projector output dimension d.",
    )
    pred_hidden_dim: int = Field(
        128, title="Predictor hidden dim", ge=8, le=8192, description="Predictor bottleneck width."
    )
    epochs: int = Field(20, ge=1, le=1000, description="Training epochs after epoch 0.")
    batch_size: int = Field(256, ge=8, le=4096, description="Images per step (two views each).")
    optimizer: Literal["sgd", "adamw", "lars"] = Field("sgd", description="The optimiser.")
    lr: float = Field(
        0.06,
        title="Base learning rate",
        gt=0,
        le=10,
        description="Base learning rate (scaled by batch/256).",
    )
    weight_decay: float = Field(5e-4, ge=0, le=1, description="L2 weight decay.")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    schedule: Literal["cosine", "constant"] = Field(
        "cosine", description="Learning-rate schedule after the warm-up."
    )
    warmup_epochs: int = Field(
        0, title="Warm-up epochs", ge=0, le=100, description="Epochs of linear lr warm-up."
    )
    augment_strength: float = Field(
        1.0,
        title="Augmentation strength",
        ge=0,
        le=2,
        description="Scales colour jitter and crop range (0 = no augmentation).",
    )
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Random seed: weights, data order, views.")
    knn_k: int = Field(
        20,
        title="kNN neighbours k",
        ge=1,
        le=200,
        description="Neighbours of the kNN accuracy probe.",
    )
    lidar_every: int = Field(
        5,
        ge=0,
        le=1000,
        description="Measure LiDAR (q = 8 views of 128 probe images) at epoch 0, every this "
        "many epochs and at the last one; 0 = never.",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="Where to train; auto = the GPU when there is one."
    )
    stop_after_settled_epochs: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Stop early once the verdict has been complete_collapse for this many "
        "epochs (the run ends succeeded, saying so); unset = train every epoch.",
    )
    options: dict[str, Any] = Field(default_factory=dict, description="Method-specific options.")

    @field_validator("method")
    @classmethod
    def _known_method(cls, method: str) -> str:
        if method not in METHOD_SPECS:
            raise ValueError(
                f"unknown method {method!r}; choose one of {', '.join(sorted(METHOD_SPECS))}"
            )
        return method

    @field_validator("options")
    @classmethod
    def _valid_options(cls, options: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """Validate against the method's own Options model; the message names the option."""
        method = info.data.get("method")
        if method is None:  # the method itself was invalid and is reported on its own
            return options
        try:
            return METHOD_SPECS[method].options.model_validate(options).model_dump()
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise ValueError(f"options.{where}: {error_message(first)}") from None
