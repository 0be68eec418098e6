"""Run configuration: one pydantic model validated before anything trains.

A run is described by a JSON object such as
``{"method": "simsiam", "dataset": "digits", "epochs": 20, "options": {"stop_gradient": false}}``
or ``{"preset": "simsiam-no-stopgrad", "epochs": 30}``. :func:`resolve_config` merges, in
order, the generic defaults, the method's own defaults, the preset and the user's fields,
then validates the result. Unknown fields anywhere (including inside ``options``) are errors.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from contract.datasets import DATASET_SPECS
from contract.methods import METHOD_SPECS
from contract.presets import PRESETS
from contract.strict import StrictInput

BackboneName = Literal["small_cnn", "resnet18"]


def _dataset_choices(schema: dict[str, Any]) -> None:
    """The registry's datasets as the field's JSON Schema enum (the Launch form's choices),
    read when the schema is generated: after the dataset plugins have joined."""
    schema["enum"] = list(DATASET_SPECS)


class RunConfig(StrictInput):
    """Everything needed to reproduce one training run."""

    method: str = Field(description="Method name from the registry, e.g. 'simsiam'.")
    preset: str | None = Field(None, description="Preset this config was derived from, if any.")
    dataset: str = Field(
        "digits",
        description="Dataset name from the registry (contract/datasets.py), e.g. 'digits'.",
        json_schema_extra=_dataset_choices,
    )
    dataset_path: str | None = Field(
        None,
        description="For a dataset read from a folder ('imagefolder'): a folder relative to "
        "the data root.",
    )
    image_size: int = Field(32, ge=16, le=224, description="Side of the square training images.")
    train_size: int | None = Field(
        None, ge=64, le=1_000_000, description="Use at most this many training images."
    )
    probe_size: int = Field(
        2048, ge=64, le=20_000, description="Held-out images the diagnostics are computed on."
    )
    backbone: BackboneName = "small_cnn"
    width: int = Field(32, ge=8, le=256, description="Base channel count of small_cnn.")
    proj_hidden_dim: int = Field(512, ge=8, le=8192)
    proj_dim: int = Field(128, ge=2, le=8192, description="Projector output dimension d.")
    pred_hidden_dim: int = Field(128, ge=8, le=8192, description="Predictor bottleneck width.")
    epochs: int = Field(20, ge=1, le=1000)
    batch_size: int = Field(256, ge=8, le=4096)
    optimizer: Literal["sgd", "adamw", "lars"] = "sgd"
    lr: float = Field(0.06, gt=0, le=10, description="Base learning rate (scaled by batch/256).")
    weight_decay: float = Field(5e-4, ge=0, le=1)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum.")
    schedule: Literal["cosine", "constant"] = "cosine"
    warmup_epochs: int = Field(0, ge=0, le=100)
    augment_strength: float = Field(
        1.0, ge=0, le=2, description="Scales colour jitter and crop range (0 = no augmentation)."
    )
    seed: int = Field(0, ge=0, le=2**31 - 1)
    knn_k: int = Field(20, ge=1, le=200)
    lidar_every: int = Field(
        5,
        ge=0,
        le=1000,
        description="Measure LiDAR (q = 8 views of 128 probe images) at epoch 0, every this "
        "many epochs and at the last one; 0 = never.",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    stop_after_settled_epochs: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Stop early once the verdict has been complete_collapse for this many "
        "epochs (the run ends succeeded, saying so); null = train every epoch.",
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

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, dataset: str) -> str:
        if dataset not in DATASET_SPECS:
            raise ValueError(
                f"unknown dataset {dataset!r}; choose one of {', '.join(DATASET_SPECS)}"
            )
        return dataset

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
            raise ValueError(f"options.{where}: {first['msg']}") from None

    @model_validator(mode="after")
    def _dataset_path_needed(self) -> RunConfig:
        if DATASET_SPECS[self.dataset].takes_path and not self.dataset_path:
            raise ValueError(f"dataset {self.dataset!r} needs dataset_path")
        return self


class ConfigError(ValueError):
    """A run config that cannot be resolved; ``field`` names the culprit."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def resolve_config(raw: dict[str, Any]) -> RunConfig:
    """Merge method defaults, the preset (if any) and the user's fields, then validate.

    Raises :class:`ConfigError` for an unknown preset or method, and pydantic's
    ``ValidationError`` for bad fields.
    """
    raw = dict(raw)
    merged: dict[str, Any] = {}
    preset_name = raw.get("preset")
    if preset_name is not None:
        if preset_name not in PRESETS:
            raise ConfigError(
                "preset", f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}"
            )
        merged = dict(PRESETS[preset_name].config)
    method = raw.get("method", merged.get("method"))
    if method is None:
        raise ConfigError("method", "give a method or a preset")
    if method not in METHOD_SPECS:
        raise ConfigError(
            "method", f"unknown method {method!r}; choose one of {', '.join(sorted(METHOD_SPECS))}"
        )
    if preset_name is not None and raw.get("method", method) != merged["method"]:
        raise ConfigError(
            "method", f"preset {preset_name!r} is for method {merged['method']!r}, not {method!r}"
        )
    user_options = raw.pop("options", None) or {}
    if not isinstance(user_options, dict):
        raise ConfigError("options", "must be an object of method options")
    options = {**merged.get("options", {}), **user_options}
    result = {
        **METHOD_SPECS[method].defaults,
        **merged,
        **raw,
        "method": method,
        "options": options,
    }
    return RunConfig.model_validate(result)
