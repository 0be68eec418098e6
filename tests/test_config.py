"""Run configs: presets merge with overrides, unknown fields and bad values are named."""

import pytest
from pydantic import ValidationError

from contract import METHOD_SPECS, PRESETS, ZOO_FIELDS, RunConfig, resolve_config
from contract.requests import RUN_REQUEST, run_config


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


def test_the_zoo_fields_are_run_fields_no_preset_sets() -> None:
    """A zoo sets them for every preset: one a preset set would override its recipe."""
    assert set(ZOO_FIELDS) <= set(RunConfig.model_fields)
    for name, preset in PRESETS.items():
        assert not set(ZOO_FIELDS) & set(preset.config), name


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
    ("raw", "loc", "message"),
    [
        ({"preset": "nope"}, (), "unknown preset 'nope': choose a method"),
        ({"preset": "nope"}, (), "or a preset (simclr, byol"),
        ({"method": "nope"}, (), "unknown method 'nope': choose a method"),
        ({"method": "nope"}, (), "choose a method (barlow_twins, byol"),
        ({"method": "nope", "preset": "simsiam"}, (), "unknown method 'nope'"),
        ({"method": "n" * 100}, (), f"unknown method '{'n' * 60}…'"),
        ({}, (), "give a JSON object with a method"),
        ({"preset": "simsiam", "method": "byol"}, ("byol", "preset"), "'byol-no-ema'"),
        ({"method": "simsiam", "options": [1, 2]}, ("simsiam", "options"), "valid dictionary"),
        ({"method": "simsiam", "epochs": 0}, ("simsiam", "epochs"), "greater than or equal"),
        (
            {"preset": "simsiam-no-stopgrad", "options": {"stop_gradient": 1}},
            ("simsiam", "options", "stop_gradient"),
            "valid boolean",
        ),
        (
            {"method": "vicreg", "dataset": "imagefolder"},
            ("vicreg", "dataset_path"),
            "dataset 'imagefolder' needs dataset_path",
        ),
    ],
)
def test_errors_are_located_by_pydantic(raw: dict, loc: tuple, message: str) -> None:
    """One error, at its place in the request: the union member (the method) then the field."""
    with pytest.raises(ValidationError) as info:
        resolve_config(raw)
    [error] = info.value.errors()
    assert error["loc"] == loc and message in error["msg"], error


@pytest.mark.parametrize(
    ("raw", "field", "message"),
    [
        (
            {"method": "vicreg", "dataset": "imagefolder"},
            "dataset_path",
            "dataset 'imagefolder' needs dataset_path",
        ),
        (
            {"method": "simclr", "backbone": "vit_tiny", "vit_dim": 100},
            None,
            "vit_dim 100 must be a multiple of vit_heads 3",
        ),
        (
            {"method": "ijepa", "backbone": "small_cnn"},
            "backbone",
            "I-JEPA trains only on 'vit_tiny', not 'small_cnn'",
        ),
    ],
)
def test_a_run_config_and_a_run_request_keep_the_same_rules(
    raw: dict, field: str | None, message: str
) -> None:
    """The rules across fields are declared once (contract.config.RunRules): a RunConfig and
    a method's request refuse alike, at the same field (or at the run)."""
    with pytest.raises(ValidationError) as direct:
        RunConfig.model_validate(raw)
    with pytest.raises(ValidationError) as request:
        resolve_config(raw)
    [config_error] = direct.value.errors()
    [request_error] = request.value.errors()
    assert message in config_error["msg"] and message in request_error["msg"]
    at = (field,) if field else ()
    assert config_error["loc"] == at
    assert request_error["loc"] == (raw["method"], *at)


def test_a_preset_request_keeps_what_was_sent_apart_from_what_the_preset_set() -> None:
    request = RUN_REQUEST.validate_python(
        {"preset": "simsiam-no-stopgrad", "epochs": 3, "options": {"predictor": False}}
    )
    assert request.model_dump(exclude_unset=True) == {
        "preset": "simsiam-no-stopgrad",
        "epochs": 3,
        "options": {"predictor": False},
    }
    config = run_config(request)
    assert config.options == {"stop_gradient": False, "predictor": False}
    assert config.lr == METHOD_SPECS["simsiam"].defaults["lr"]
