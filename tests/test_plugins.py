"""Method plugin loading (contract/plugins.py): good specs and presets join the
catalogue, each broken plugin is left out with a message naming it, and nothing raises."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract import METHOD_SPECS, PRESETS
from contract.plugins import load_plugins

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
