"""Sweeps: a base run config x a grid over one or two of its fields or options x seeds.

``{"base": {"preset": "vicreg", "epochs": 10}, "grid": {"variance_weight": [0, 25]},
"seeds": [0, 1]}`` stands for 2 grid points x 2 seeds = 4 ordinary runs. A grid key is a
run-config field (``lr``, ``batch_size``...) or an option of the base's method
(``variance_weight``, or spelt ``options.variance_weight``); its values are a list or a range
``{"start", "stop", "steps", "scale": "linear" | "log"}`` or text in the command line's grammar
(``"0, 5, 25"``, ``"0.01..1 x5 log"``: :func:`parse_grid_values`, the grammar's one
definition; the Launch form sends its text as typed). :func:`expand_sweep` turns the
request into one run request per grid point and seed, in grid order (the first key varies
slowest); each is validated like any launch (:data:`contract.requests.RunRequest`, as the
base is), and :class:`SweepError` names the grid key at fault.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, ValidationError, model_validator

from contract.config import RunConfig
from contract.labels import MAX_ALERT_RECEIVERS, RunName, WebhookUrl
from contract.methods import METHOD_SPECS
from contract.records import VERDICT_SEVERITY, VerdictKind
from contract.requests import RunRequest, RunRequestBase, run_config
from contract.strict import StrictModel, error_message

MAX_GRID_KEYS = 2
MAX_VALUES_PER_KEY = 50
# How many epochs a complete collapse must hold before a sweep's run stops (see
# RunConfig.stop_after_settled_epochs): the verdict's onset needs two epochs to be trusted
# (its warnings use two), a third makes a relapse to healthy unlikely on every preset.
SWEEP_SETTLED_EPOCHS = 3

GridValue = bool | int | float | str | None
_NOT_SWEEPABLE = ("method", "preset", "options")


class GridRange(StrictModel):
    """``steps`` values from ``start`` to ``stop`` (both included), evenly spaced or, with
    ``scale: "log"``, geometrically (start and stop must then be positive)."""

    # 1e400 reads as infinity: refused here, not as the "values repeat" of inf, inf, ...
    start: float = Field(allow_inf_nan=False)
    stop: float = Field(allow_inf_nan=False)
    steps: int = Field(ge=2, le=MAX_VALUES_PER_KEY)
    scale: Literal["linear", "log"] = "linear"

    @model_validator(mode="after")
    def _positive_for_log(self) -> GridRange:
        if self.scale == "log" and (self.start <= 0 or self.stop <= 0):
            raise ValueError("a log range needs start and stop above 0")
        return self

    def values(self) -> list[float]:
        if self.scale == "log":
            low, high = math.log(self.start), math.log(self.stop)
            points = [
                math.exp(low + (high - low) * i / (self.steps - 1)) for i in range(self.steps)
            ]
        else:
            # weighted, not start + (stop - start) * t: -1e308..1e308 does not overflow
            weights = [i / (self.steps - 1) for i in range(self.steps)]
            points = [self.start * (1 - w) + self.stop * w for w in weights]
        return [float(f"{p:.6g}") for p in points]  # 0.1 rather than 0.10000000000000002


def _list_range_or_text(value: Any) -> str:
    if isinstance(value, str):
        return "text"
    # a dict from a JSON body, or the GridRange that parse_grid_values returns
    return "range" if isinstance(value, dict | GridRange) else "list"


# A list of values, a range object or their text; told apart by shape, so an error names one.
GridSpec = Annotated[
    Annotated[list[GridValue], Tag("list")]
    | Annotated[GridRange, Tag("range")]
    | Annotated[str, Tag("text")],
    Discriminator(_list_range_or_text),
]


class SweepRequest(StrictModel):
    """The body of ``POST /api/sweeps``."""

    name: RunName | None = Field(None, description="A label for the sweep's page.")
    base: RunRequest = Field(
        description="A run config (method or preset, with overrides), as for POST /api/runs."
    )
    grid: dict[str, GridSpec] = Field(
        description="One or two run-config fields or method options, each with a list of "
        "values, a range {start, stop, steps, scale: linear|log}, or their text: "
        "'0, 5, 25' or '0.01..1 x5 log'."
    )
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        max_length=10,
        description="Seeds of every grid point; default: the base's seed (0).",
    )
    concurrency: int | None = Field(
        None,
        ge=1,
        le=64,
        description="At most this many of the sweep's runs are sent to the workers at once; "
        "default: the server's SWEEP_CONCURRENCY.",
    )
    alerts: list[WebhookUrl] = Field(
        default_factory=list,
        max_length=MAX_ALERT_RECEIVERS,
        description="Webhook URLs told of the sweep's runs' collapses and failures and of its "
        "end (the base's labels, alerts included, go to each of its runs).",
    )
    stop_when_settled: bool = Field(
        True,
        description="Stop a run once complete collapse has held for "
        f"{SWEEP_SETTLED_EPOCHS} epochs (unless the base sets stop_after_settled_epochs).",
    )


class SweepError(ValueError):
    """A sweep request that cannot be expanded; ``loc`` is the path of the culprit in the
    request body, e.g. ``("grid", "variance_weight")``."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(f"{'.'.join(str(p) for p in loc)}: {message}")
        self.loc = loc
        self.message = message


@dataclass(frozen=True)
class GridAxis:
    """One grid key: where it lives in a run config and its values."""

    key: str  # as the request named it
    field: str  # the run-config field or option name
    is_option: bool
    values: list[GridValue]

    def apply(self, raw: dict[str, Any], value: GridValue) -> None:
        if self.is_option:
            raw["options"] = {**(raw.get("options") or {}), self.field: value}
        else:
            raw[self.field] = value


@dataclass(frozen=True)
class SweepRun:
    """One run of a sweep: its grid point, seed and run request."""

    cell: int  # index of the grid point
    point: dict[str, GridValue]  # grid key -> value
    seed: int
    request: dict[str, Any]


def _is_int_field(annotation: Any) -> bool:
    return annotation is int or annotation == (int | None)


def _axis(method: str, key: str, spec: list[GridValue] | GridRange | str) -> GridAxis:
    if isinstance(spec, str):
        try:
            spec = parse_grid_values(spec)
        except ValidationError as exc:  # the range's field is named: "steps: ... <= 50"
            error = exc.errors()[0]
            field = "".join(f"{part}: " for part in error["loc"])
            message = error_message(error)
            raise SweepError(("grid", key), f"{spec!r}: {field}{message}") from None
        except ValueError as exc:  # a range bound that is no number: "-..1 x3"
            raise SweepError(("grid", key), f"{spec!r}: {exc}") from None
    options = METHOD_SPECS[method].options.model_fields
    name = key.removeprefix("options.")
    if key.startswith("options.") or (name not in RunConfig.model_fields and name in options):
        if name not in options:
            raise SweepError(
                ("grid", key),
                f"{method} has no option {name!r}; its options: {', '.join(options) or 'none'}",
            )
        is_option, annotation = True, options[name].annotation
    elif name in RunConfig.model_fields and name not in _NOT_SWEEPABLE:
        is_option, annotation = False, RunConfig.model_fields[name].annotation
    else:
        raise SweepError(
            ("grid", key),
            f"not a run-config field nor an option of {method}; options: {', '.join(options)}",
        )
    if isinstance(spec, GridRange):
        values: list[GridValue] = list(spec.values())
        if _is_int_field(annotation):
            values = list(dict.fromkeys(round(float(v)) for v in values if v is not None))
    else:
        values = list(spec)
    if not values:
        raise SweepError(("grid", key), "give at least one value")
    if len(values) > MAX_VALUES_PER_KEY:
        raise SweepError(("grid", key), f"at most {MAX_VALUES_PER_KEY} values per key")
    if len(set(map(repr, values))) != len(values):
        raise SweepError(("grid", key), "values repeat")
    return GridAxis(key, name, is_option, values)


def grid_axes(request: SweepRequest) -> list[GridAxis]:
    """The grid's keys, checked (known field or option, at most two, distinct targets)."""
    if not request.grid:
        raise SweepError(("grid",), "give one or two fields or options to sweep")
    if len(request.grid) > MAX_GRID_KEYS:
        raise SweepError(("grid",), f"at most {MAX_GRID_KEYS} keys (a map has two axes)")
    base: RunRequestBase = request.base
    axes = [_axis(base.method_name, key, spec) for key, spec in request.grid.items()]
    if len({(a.is_option, a.field) for a in axes}) != len(axes):
        raise SweepError(("grid",), "two keys name the same field")
    if request.seeds is not None and any(a.field == "seed" and not a.is_option for a in axes):
        raise SweepError(("seeds",), "sweep the seed either in grid or in seeds, not both")
    return axes


def _seed(raw: dict[str, Any], loc: tuple[str, ...]) -> int:
    """A run request's seed (0 when unset); SweepError at ``loc`` when it is no integer."""
    seed = raw.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise SweepError(loc, f"a seed is an integer, got {seed!r}")
    return seed


def expand_sweep(
    request: SweepRequest, max_runs: int | None = None
) -> tuple[list[GridAxis], list[SweepRun]]:
    """The grid axes and every run of the sweep (grid points in order, seeds within)."""
    axes = grid_axes(request)
    seeds_in_grid = any(a.field == "seed" and not a.is_option for a in axes)
    base: RunRequestBase = request.base
    seeds = [None] if seeds_in_grid else (request.seeds or [run_config(base).seed])
    base_seed = ("base", "seed")
    if len(set(seeds)) != len(seeds):
        raise SweepError(("seeds",), "seeds repeat")
    points = list(itertools.product(*(a.values for a in axes)))
    total = len(points) * len(seeds)
    if max_runs is not None and total > max_runs:
        raise SweepError(
            ("grid",),
            f"{len(points)} grid points x {len(seeds)} seeds = {total} runs, above this "
            f"server's limit of {max_runs} (MAX_SWEEP_RUNS)",
        )
    runs = []
    for cell, values in enumerate(points):
        for seed in seeds:
            raw = base.model_dump(mode="json", exclude_unset=True)  # the base as sent
            for axis, value in zip(axes, values, strict=True):
                axis.apply(raw, value)
            if seed is not None:
                raw["seed"] = seed
            if request.stop_when_settled and "stop_after_settled_epochs" not in raw:
                raw["stop_after_settled_epochs"] = SWEEP_SETTLED_EPOCHS
            point = {a.key: v for a, v in zip(axes, values, strict=True)}
            seed_at = ("grid", "seed") if seeds_in_grid else base_seed
            runs.append(SweepRun(cell, point, _seed(raw, seed_at), raw))
    return axes, runs


def axis_of_field(axes: list[GridAxis], loc: list[Any]) -> GridAxis | None:
    """The grid axis a run-config error location (``["options", "x"]``, ``["lr"]``) is in."""
    for axis in axes:
        if axis.is_option and loc[:2] == ["options", axis.field]:
            return axis
        if not axis.is_option and loc[:1] == [axis.field]:
            return axis
    return None


@dataclass(frozen=True)
class CellVerdict:
    """What a grid point's seeds reached: the kind most of them did (a tie goes to the more
    severe kind), whether they all agree, the lower median onset of the runs of that kind."""

    kind: VerdictKind | None
    seeds_agree: bool
    onset_epoch: int | None
    kinds: dict[str, int]


def aggregate_verdicts(verdicts: list[tuple[VerdictKind, int | None]]) -> CellVerdict:
    """``verdicts``: (kind, onset epoch) of each seed that has a verdict."""
    kinds = Counter(kind for kind, _ in verdicts)
    if not kinds:
        return CellVerdict(None, True, None, {})
    kind = max(kinds, key=lambda k: (kinds[k], VERDICT_SEVERITY[k]))
    onsets = [onset for k, onset in verdicts if k == kind and onset is not None]
    onset = statistics.median_low(onsets) if onsets else None
    return CellVerdict(kind, len(kinds) == 1, onset, {str(k): n for k, n in kinds.items()})


_RANGE = re.compile(r"^\s*(-?[\d.eE+-]+)\s*\.\.\s*(-?[\d.eE+-]+)\s*x\s*(\d+)\s*(log|linear)?\s*$")


def parse_grid_values(text: str) -> list[GridValue] | GridRange:
    """The command line's (and the Launch form's) spelling of a grid key's values:
    ``0,5,25`` (each read as JSON when it parses: ``true``, ``0.5``) or a range
    ``0.01..1x5log`` / ``0..25x6`` (start..stop x steps [log|linear])."""
    match = _RANGE.match(text)
    if match:
        start, stop, steps, scale = match.groups()
        return GridRange(
            start=float(start), stop=float(stop), steps=int(steps), scale=scale or "linear"
        )
    return [read_typed(part) for part in (p.strip() for p in text.split(",")) if part]


def read_typed(text: str) -> Any:
    """A value typed as text (a grid value, the command line's ``--set`` and flags): JSON
    when it parses (``0.5``, ``true``, ``null``); ``nan``, ``inf``, ``-infinity``... as the
    float they spell (JSON spells only NaN and Infinity), so that the config says they are
    not finite numbers, as for 1e400; else the text itself."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    try:
        number = float(text)
    except ValueError:
        return text
    return text if math.isfinite(number) else number
