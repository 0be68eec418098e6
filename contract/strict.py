"""The bases of every model in the run spec and of every request body.

``StrictModel``: unknown fields are errors, not silently dropped (records, verdicts).
``StrictInput``: what users send (run configs, method options, request bodies) — also no
coercion between types (``epochs: true`` is not 1, ``stop_gradient: "yes"`` is not true;
an int is still a valid float) and no NaN or infinity ("not a finite number").
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StrictInput(StrictModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
