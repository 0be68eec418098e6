"""Turning a launch request into a RunConfig, or into a 422 that names the field.

Errors are FastAPI-shaped: ``{"detail": [{"loc": ["body", "options", "stop_gradient"],
"msg": "Input should be a valid boolean", "type": "bool_parsing"}]}`` so the launch form
can put each message next to its field. Beyond the engine's own validation, the server's
limits apply (``MAX_EPOCHS``, ``MAX_BATCH_SIZE``, ``MAX_PROBE_SIZE``, ``MAX_TRAIN_SIZE``) and
an ``imagefolder`` path must be an existing folder inside ``DATA_DIR``.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from backend.settings import Settings
from contract import ConfigError, RunConfig, resolve_config
from contract.datasets import DATASET_SPECS, DatasetError, resolve_inside

_FIELD_PREFIX = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*): (.*)$", re.S)


def _error(loc: list[Any], msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def _model_level_error(message: str, fields: set[str]) -> dict[str, Any]:
    """A model validator's message ('options.x: ...', 'unknown method ...') -> its field."""
    message = message.removeprefix("Value error, ")
    match = _FIELD_PREFIX.match(message)
    if match and match.group(1).split(".")[0] in fields:
        return _error(match.group(1).split("."), match.group(2))
    mentioned = [f for f in fields if re.search(rf"\b{re.escape(f)}\b", message)]
    mentioned.sort(key=message.index)
    return _error(mentioned[:1], message)


def validation_errors(exc: ValidationError, fields: set[str]) -> list[dict[str, Any]]:
    errors = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        match = _FIELD_PREFIX.match(message)
        if match and match.group(1).split(".")[0] in fields:
            errors.append(_error(match.group(1).split("."), match.group(2), error["type"]))
        elif error["loc"]:
            errors.append(_error(list(error["loc"]), message, error["type"]))
        else:
            errors.append(_model_level_error(error["msg"], fields))
    return errors


def check_limits(config: RunConfig, settings: Settings) -> list[dict[str, Any]]:
    """The deployment's limits, beyond what the engine accepts."""
    errors = []
    limits = (
        ("epochs", settings.max_epochs, "MAX_EPOCHS"),
        ("batch_size", settings.max_batch_size, "MAX_BATCH_SIZE"),
        ("probe_size", settings.max_probe_size, "MAX_PROBE_SIZE"),
        ("train_size", settings.max_train_size, "MAX_TRAIN_SIZE"),
    )
    for field, limit, variable in limits:
        value = getattr(config, field)
        if value is not None and value > limit:
            errors.append(
                _error(
                    [field],
                    f"{value} is above this server's limit of {limit} ({variable})",
                    "less_than_equal",
                )
            )
    if config.dataset_path is not None:
        if not DATASET_SPECS[config.dataset].takes_path:
            takes_path = ", ".join(repr(s.name) for s in DATASET_SPECS.values() if s.takes_path)
            errors.append(_error(["dataset_path"], f"dataset_path is only for {takes_path}"))
        else:
            try:
                folder = resolve_inside(settings.resolved_data_dir, config.dataset_path)
            except DatasetError as exc:
                errors.append(_error(["dataset_path"], str(exc)))
            else:
                if not folder.is_dir():
                    errors.append(
                        _error(
                            ["dataset_path"],
                            f"no folder {config.dataset_path!r} in the data directory",
                        )
                    )
    return errors


def resolve_request(raw: dict[str, Any], settings: Settings) -> RunConfig:
    """The validated ``RunConfig`` for a launch request; raises RequestValidationError."""
    fields = set(RunConfig.model_fields)
    try:
        config = resolve_config(raw)
    except ConfigError as exc:
        raise RequestValidationError([_error(exc.field.split("."), exc.message)]) from None
    except ValidationError as exc:
        raise RequestValidationError(validation_errors(exc, fields)) from None
    except (TypeError, ValueError) as exc:
        raise RequestValidationError([_model_level_error(str(exc), fields)]) from None
    errors = check_limits(config, settings)
    if errors:
        raise RequestValidationError(errors)
    return config
