"""The bases of every model in the run spec and of every request body.

``StrictModel``: unknown fields are errors, not silently dropped (records, verdicts).
``StrictInput``: what users send (run configs, method options, request bodies) — also no
coercion between types (``epochs: true`` is not 1, ``stop_gradient: "yes"`` is not true;
an int is still a valid float) and no NaN or infinity ("not a finite number").
``error_message``: how every layer words one of their validation errors; ``shortened``: how
they repeat a long input in one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrictInput(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def error_message(error: Mapping[str, Any]) -> str:
    """Pydantic's message for one error, without the "Value error, " it puts before the text
    of a ValueError raised by a validator: the rules' texts are sentences of their own."""
    message = str(error["msg"])
    return message.removeprefix("Value error, ") if error["type"] == "value_error" else message


def shortened(text: str, limit: int) -> str:
    """``text`` as a message repeats it: its first ``limit`` characters, then "…"."""
    return text if len(text) <= limit else text[:limit] + "…"
