"""Print how the packages installed in this interpreter's environment differ from the lock.

`make test-latest` runs it in its venv of the newest releases pyproject allows, so the output
names the versions a fresh `pip install` would get today and the lock does not (yet) have.
"""

from __future__ import annotations

import re
from importlib.metadata import distributions
from pathlib import Path

from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements" / "lock.txt"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+?)(?:\s|$)", re.M)
OWN = {"collapse-lab", "collapse-lab-client", "pip"}


def main() -> None:
    locked = {canonicalize_name(name): version for name, version in PIN.findall(LOCK.read_text())}
    installed = {canonicalize_name(d.metadata["Name"]): d.version for d in distributions()}
    rows = []
    for name in sorted((set(locked) | set(installed)) - OWN):
        before, after = locked.get(name, "-"), installed.get(name, "-")
        if before != after:
            rows.append(f"  {name:<28} {before:<16} {after}")
    print(f"{len(rows)} packages differ from {LOCK.name} (name, locked, installed here):")
    print("\n".join(rows) or "  none")


if __name__ == "__main__":
    main()
