"""The grid grammar (``contract.sweeps.parse_grid_values``) and the sweep request's three
spellings of a key's values: a list, a range and their text; the messages of refused values."""

from types import SimpleNamespace

import pytest
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from backend.routers.sweeps import _validated_runs
from backend.settings import Settings
from backend.sweep_schemas import SweepRunOut, _cell
from contract.sweeps import GridRange, SweepError, SweepRequest, expand_sweep, parse_grid_values

BASE = {"preset": "vicreg", "epochs": 1}


def values_of(spec: object) -> list[object]:
    axes, _ = expand_sweep(SweepRequest.model_validate({"base": BASE, "grid": {"lr": spec}}))
    return list(axes[0].values)


def test_a_range_is_the_same_parsed_as_sent_as_a_dict_or_as_text() -> None:
    parsed = parse_grid_values("0.01..1x5log")
    assert isinstance(parsed, GridRange)
    expected = [0.01, 0.0316228, 0.1, 0.316228, 1.0]
    # the parsed GridRange (what the command line once passed) was validated as a list
    assert values_of(parsed) == expected
    assert values_of(parsed.model_dump()) == expected  # a JSON body's object
    assert values_of("0.01..1x5log") == expected  # the text, as the Launch form sends it
    assert values_of(parse_grid_values("0.1, 0.2")) == [0.1, 0.2]


def test_a_text_range_out_of_bounds_names_its_steps() -> None:
    """ "Input should be less than or equal to 50" under grid.lr read as a limit on lr."""
    with pytest.raises(SweepError) as refused:
        values_of("0.01..1x500")
    assert refused.value.loc == ("grid", "lr")
    assert "'0.01..1x500': steps: " in str(refused.value) and "50" in str(refused.value)


@pytest.mark.parametrize("spec", ["0.1..1e400x3", {"start": 0.1, "stop": float("inf"), "steps": 3}])
def test_a_range_endpoint_past_a_float_is_no_finite_number(spec: object) -> None:
    """1e400 reads as infinity: once refused as "values repeat" (inf, inf)."""
    with pytest.raises((SweepError, ValidationError)) as refused:
        values_of(spec)
    assert "stop: Input should be a finite number" in str(refused.value).replace("\n  ", ": ")


def test_a_wide_linear_range_does_not_overflow() -> None:
    assert values_of("-1e308..1e308x3") == [-1e308, 0.0, 1e308]


@pytest.mark.parametrize(("values", "spelt"), [([0.1, None], "null"), ([True, False], "true")])
def test_the_preview_spells_a_refused_grid_value_as_json(values: list[object], spelt: str) -> None:
    """As the request sent it, not as Python writes it (None, True)."""
    request = SweepRequest.model_validate({"base": BASE, "grid": {"lr": values}})
    state = SimpleNamespace(settings=Settings(_env_file=None))
    with pytest.raises(RequestValidationError) as refused:
        _validated_runs(request, state)  # only its settings are read
    error = refused.value.errors()[0]
    assert error["loc"] == ["body", "grid", "lr"]
    assert error["msg"].startswith(f"value {spelt}: Input should be a valid number")


def _seed(status: str, kind: str | None, seed: int) -> SweepRunOut:
    return SweepRunOut(
        id=f"r{seed}",
        url=f"/runs/r{seed}",
        seed=seed,
        status=status,  # type: ignore[arg-type]
        progress=1.0,
        last_epoch=2,
        epochs=6,
        verdict_kind=kind,  # type: ignore[arg-type]
        onset_epoch=None,
        stopped_early=None,
        error=None,
        final=None,
    )


def test_a_run_cancelled_partway_leaves_the_cells_verdict_and_says_so() -> None:
    """Its verdict is its last epoch's, not the schedule's: the cell's verdict rests on the
    seeds that ran (or run) on, and the cell reads cancelled, not succeeded."""
    runs = [_seed("succeeded", "complete_collapse", 0), _seed("cancelled", "healthy", 1)]
    cell = _cell(0, {"point": {"lr": 0.05}}, runs)
    assert cell.status == "cancelled"
    assert cell.kinds == {"complete_collapse": 1} and cell.seeds_agree
    live = _cell(0, {"point": {"lr": 0.05}}, [_seed("running", "healthy", 0)])
    assert live.status == "running" and live.kinds == {"healthy": 1}  # "so far"
