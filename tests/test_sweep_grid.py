"""The grid grammar (``contract.sweeps.parse_grid_values``) and the sweep request's three
spellings of a key's values: a list, a range and their text."""

import pytest

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
