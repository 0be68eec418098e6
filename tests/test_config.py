"""Run configs: presets merge with overrides, unknown fields and bad values are named."""

import pytest
from pydantic import ValidationError

from contract import METHOD_SPECS, PRESETS, ConfigError, resolve_config


def test_preset_sets_method_and_options_and_user_overrides_win() -> None:
    config = resolve_config({"preset": "simsiam-no-stopgrad", "epochs": 3, "seed": 7})
    assert config.method == "simsiam"
    assert config.options["stop_gradient"] is False
    assert config.epochs == 3 and config.seed == 7
    assert config.preset == "simsiam-no-stopgrad"


def test_user_options_merge_into_preset_options() -> None:
    config = resolve_config({"preset": "simsiam-no-stopgrad", "options": {"predictor": False}})
    assert config.options["stop_gradient"] is False
    assert config.options["predictor"] is False


def test_method_defaults_apply_unless_overridden() -> None:
    for name, spec in METHOD_SPECS.items():
        config = resolve_config({"method": name})
        for field, value in spec.defaults.items():
            assert getattr(config, field) == value, (name, field)
    config = resolve_config({"method": "simclr", "lr": 0.123})
    assert config.lr == 0.123


def test_every_preset_resolves() -> None:
    for name, preset in PRESETS.items():
        config = resolve_config({"preset": name})
        assert config.method == preset.config["method"]


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"method": "simsiam", "bogus": 1}, "bogus"),
        ({"method": "simsiam", "options": {"bogus": 1}}, "options.bogus"),
        ({"method": "simsiam", "epochs": 0}, "epochs"),
        ({"method": "simsiam", "dataset": "mnist"}, "dataset"),
        ({"method": "simsiam", "options": {"stop_gradient": "maybe"}}, "options.stop_gradient"),
    ],
)
def test_invalid_fields_are_named(raw: dict, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        resolve_config(raw)
    text = str(info.value)
    assert field in text


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"preset": "nope"}, "preset"),
        ({"method": "nope"}, "method"),
        ({}, "method"),
        ({"preset": "simsiam", "method": "byol"}, "method"),
        ({"method": "simsiam", "options": [1, 2]}, "options"),
    ],
)
def test_config_errors_name_the_field(raw: dict, field: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_config(raw)
    assert info.value.field == field
