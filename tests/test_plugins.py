"""Method plugin loading (contract/plugins.py): good specs and presets join the
catalogue, each broken plugin is left out with a message naming it, and nothing raises. Method
and dataset plugins are found and checked by one loader (tests/test_datasets.py has the
dataset plugins' own checks)."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from contract import DATASET_SPECS, METHOD_SPECS, PRESETS
from contract import plugins as plugins_module
from contract.plugins import load_dataset_plugins, load_plugins

GOOD = """
from pydantic import Field
from contract import MethodSpec, Preset, StrictInput

class Options(StrictInput):
    strength: float = Field(1.0, description="How hard.")

METHOD_SPEC = MethodSpec(name="toy", title="Toy", paper="Nobody 2026.", family="other",
                         options=Options, implementation="toy_impl:Toy")
PRESETS = [Preset("toy-off", "Toy off", "Off.", {"method": "toy", "options": {"strength": 0}},
                  "complete_collapse"),
           Preset("simsiam", "Clash", "Taken.", {"method": "toy"}, "healthy")]
"""
NO_DEFAULT = """
from contract import MethodSpec, StrictInput

class Options(StrictInput):
    required: int

METHOD_SPEC = MethodSpec(name="nodefault", title="N", paper="P", family="other",
                         options=Options, implementation="x:Y")
"""
CLASH = """
from contract import METHOD_SPECS  # the catalogue itself, not a plugin's list
from contract.methods.simsiam import SIMSIAM_SPEC as METHOD_SPEC
"""


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Iterator[Path]:
    sources = {
        "plug_good": GOOD,
        "plug_nodefault": NO_DEFAULT,
        "plug_clash": CLASH,
        "plug_broken": "import does_not_exist_anywhere\n",
        "plug_empty": "X = 1\n",
    }
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(text))
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    for name in sources:
        sys.modules.pop(name, None)


def test_good_plugins_load_and_broken_ones_are_reported_by_name(plugin_dir: Path) -> None:
    modules = "plug_good, plug_nodefault,plug_clash,plug_broken,plug_empty,,"
    plugins = load_plugins(set(METHOD_SPECS), set(PRESETS), modules)
    assert [(plugin, spec.name) for plugin, spec in plugins.specs] == [("plug_good", "toy")]
    assert [preset.name for _, preset in plugins.presets] == ["toy-off"]
    errors = {e.plugin: e.error for e in plugins.errors}
    assert "preset name 'simsiam' is already taken" in errors["plug_good"]
    assert "options need a default for every field" in errors["plug_nodefault"]
    assert "method name 'simsiam' is already taken" in errors["plug_clash"]
    assert errors["plug_broken"].startswith("ModuleNotFoundError")
    assert "neither METHOD_SPEC nor METHOD_SPECS" in errors["plug_empty"]


def test_method_plugins_is_read_from_the_environment(
    plugin_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("METHOD_PLUGINS", "plug_good")
    plugins = load_plugins(set(METHOD_SPECS), set(PRESETS))
    assert [spec.name for _, spec in plugins.specs] == ["toy"]
    assert plugins.specs[0][1].options().model_dump() == {"strength": 1.0}


@pytest.mark.parametrize(
    ("kind", "spec_type", "variable", "group"),
    [
        ("METHOD", "MethodSpec", "METHOD_PLUGINS", "collapse_lab.methods"),
        ("DATASET", "DatasetSpec", "DATASET_PLUGINS", "collapse_lab.datasets"),
    ],
)
def test_method_and_dataset_plugins_are_found_and_refused_alike(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    spec_type: str,
    variable: str,
    group: str,
) -> None:
    """Each kind reads its own entry-point group and environment variable, and the one
    loader refuses what is not a spec of that kind, naming the plugin."""
    prefix = f"plug_{kind.lower()}"
    sources = {
        f"{prefix}_pointed": f"{kind}_SPEC = 'a spec?'\n",
        f"{prefix}_listed": f"{kind}_SPECS = [1]\n",
        f"{prefix}_notalist": f"{kind}_SPECS = 3\n",
    }
    for name, text in sources.items():
        (tmp_path / f"{name}.py").write_text(text)
    monkeypatch.syspath_prepend(str(tmp_path))
    point = EntryPoint("pointed", f"{prefix}_pointed", group)
    monkeypatch.setattr(
        plugins_module, "entry_points", lambda group: [point] if group == point.group else []
    )
    monkeypatch.setenv(variable, f"{prefix}_listed,{prefix}_notalist")
    try:
        if kind == "METHOD":
            loaded = load_plugins(set(METHOD_SPECS), set(PRESETS))
        else:
            loaded = load_dataset_plugins(set(DATASET_SPECS))
    finally:
        for name in sources:
            sys.modules.pop(name, None)
    assert loaded.specs == loaded.presets == loaded.datasets == []
    assert [(e.plugin, e.error) for e in loaded.errors] == [
        (f"pointed (entry point {prefix}_pointed)", f"expected a {spec_type}, got str"),
        (f"{prefix}_listed", f"expected a {spec_type}, got int"),
        (
            f"{prefix}_notalist",
            f"TypeError: {prefix}_notalist.{kind}_SPECS must be a list of {spec_type}",
        ),
    ]


# -- the example plugin, examples/wmse_plugin --------------------------------------------------
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "wmse_plugin"


@pytest.fixture
def example_on_path() -> Iterator[None]:
    sys.path.insert(0, str(EXAMPLE))
    yield
    sys.path.remove(str(EXAMPLE))
    for name in [m for m in sys.modules if m.startswith("wmse_plugin")]:
        sys.modules.pop(name)


def test_the_example_plugin_loads_beside_every_built_in_method(example_on_path: None) -> None:
    plugins = load_plugins(set(METHOD_SPECS), set(PRESETS), "wmse_plugin.spec")
    assert plugins.errors == []
    assert [spec.name for _, spec in plugins.specs] == ["wmse"]
    assert [p.name for _, p in plugins.presets] == ["wmse", "wmse-no-whitening"]


def test_the_example_whitens_and_its_loss_needs_the_whitening(
    example_on_path: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from wmse_plugin.method import WMSE, normalised_mse, whiten, wmse_loss

    from contract import RunConfig
    from workers.engine.methods import StepInfo

    # as the plugin loader registers it (RunConfig checks options against the catalogue; the
    # request union of contract/requests.py is built at import, with METHOD_PLUGINS)
    monkeypatch.setitem(METHOD_SPECS, "wmse", WMSE.spec)

    g = torch.Generator().manual_seed(0)
    z = (
        torch.randn(200, 6, generator=g, dtype=torch.float64)
        @ torch.randn(6, 6, generator=g, dtype=torch.float64)
        + 3.0
    )
    white = whiten(z)
    assert white.mean(dim=0).abs().max() < 1e-9
    # identity covariance, up to the 1e-4 shrinkage (felt by the smallest-variance direction)
    torch.testing.assert_close(
        white.T @ white / 199, torch.eye(6, dtype=torch.float64), atol=2e-2, rtol=0
    )
    # one point for every image: zero loss without whitening, the largest-but-one with it
    constant = torch.ones(128, 8, dtype=torch.float64)
    order = [torch.arange(128)]
    assert normalised_mse(constant, constant).item() == pytest.approx(0.0, abs=1e-12)
    assert wmse_loss(constant, constant, 64, order).item() == pytest.approx(2.0)
    # positives identical up to noise: whitening keeps the loss near 0
    noisy = z[:128] + 0.01 * torch.randn(128, 6, generator=g, dtype=torch.float64)
    assert wmse_loss(z[:128], noisy, 64, order).item() < 0.05

    config = RunConfig.model_validate(
        {"method": "wmse", "proj_hidden_dim": 16, "proj_dim": 8, "options": {"whitening_size": 16}}
    )
    torch.manual_seed(0)
    backbone = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 12))
    method = WMSE(backbone, 12, config)
    views = [torch.randn(32, 3, 8, 8, generator=g) for _ in range(2)]
    out = method.training_loss(views, torch.arange(32), StepInfo(1, 0, 10))
    out.loss.backward()
    assert 0 < out.loss.item() < 4 and 0 <= out.logs["unwhitened_mse"] <= 4
    assert backbone[1].weight.grad is not None
    with pytest.raises(ValueError, match="must exceed proj_dim"):
        WMSE(backbone, 12, RunConfig.model_validate({"method": "wmse", "proj_dim": 64}))
