"""The committed lock files (requirements/, written by `make lock`) satisfy the pyproject files.

Every dependency that pyproject.toml and client/pyproject.toml declare (every extra, and the
build backend) is pinned, inside its range; the image subsets carry the lock's own versions and
the API's is torch-free; the client's lowest-versions lock sits on the floors of its ranges.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
REQUIREMENTS = ROOT / "requirements"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s|$)", re.M)
TORCH = {"torch", "torchvision", "triton"}


def pins(lock: str) -> dict[NormalizedName, Version]:
    """``name==version`` lines of a pip-compile output (its hashes and comments skipped)."""
    text = (REQUIREMENTS / lock).read_text()
    found = {canonicalize_name(name): Version(version) for name, version in PIN.findall(text)}
    assert found, f"requirements/{lock} pins nothing"
    return found


def pyproject(path: str) -> dict:
    return tomllib.loads((ROOT / path).read_text())


def declared(path: str, *, extras: bool, build: bool = True) -> list[Requirement]:
    """The dependencies a pyproject file declares, with every extra's when ``extras`` and its
    build backend when ``build`` (installed from the lock: `pip install --no-build-isolation`)."""
    data = pyproject(path)
    lines = list(data["project"]["dependencies"])
    if extras:
        groups = data["project"]["optional-dependencies"].values()
        lines += [line for group in groups for line in group]
    if build:
        lines += data["build-system"]["requires"]
    return [Requirement(line) for line in lines]


def both_packages(*, extras: bool) -> list[Requirement]:
    return [
        requirement
        for path in ("pyproject.toml", "client/pyproject.toml")
        for requirement in declared(path, extras=extras)
    ]


def unsatisfied(wanted: list[Requirement], locked: dict[NormalizedName, Version]) -> list[str]:
    """What the lock misses or pins outside a range (requirements for another platform aside)."""
    problems = []
    for requirement in wanted:
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        version = locked.get(canonicalize_name(requirement.name))
        if version is None:
            problems.append(f"{requirement} is not in the lock")
        elif not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement} is locked at {version}, outside its range")
    return problems


def test_the_lock_pins_every_declared_dependency_inside_its_range() -> None:
    assert unsatisfied(both_packages(extras=True), pins("lock.txt")) == []


def test_the_lock_holds_the_pinned_pytorch_pair() -> None:
    locked = pins("lock.txt")
    for line in (REQUIREMENTS / "lock.in").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            requirement = Requirement(line)
            assert locked[canonicalize_name(requirement.name)] in requirement.specifier, line


@pytest.mark.parametrize("image, extras", [("api", ()), ("worker", ("worker",))])
def test_the_image_locks_are_subsets_of_the_lock(image: str, extras: tuple[str, ...]) -> None:
    subset, locked = pins(f"{image}.txt"), pins("lock.txt")
    assert {name: version for name, version in subset.items() if locked.get(name) != version} == {}
    wanted = both_packages(extras=False)
    optional = pyproject("pyproject.toml")["project"]["optional-dependencies"]
    wanted += [Requirement(line) for extra in extras for line in optional[extra]]
    assert unsatisfied(wanted, subset) == []


def test_the_api_lock_is_torch_free() -> None:
    api = pins("api.txt")
    assert sorted(name for name in api if name in TORCH or name.startswith("nvidia-")) == []


def test_the_client_lowest_lock_sits_on_the_floors_of_its_ranges() -> None:
    lowest = pins("client-lowest.txt")
    for requirement in declared("client/pyproject.toml", extras=False, build=False):
        (floor,) = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lowest[canonicalize_name(requirement.name)] == floor, requirement
    assert {"torch", "lightning"}.isdisjoint(lowest)
