"""The README's configuration table, generated from the service's settings (backend/settings.py):
one row per field of ``Settings``, its environment variable, default and description.

``--write`` rewrites it in README.md, ``--check`` fails when it is out of date
(scripts/readme_table.py); tests/test_settings_table.py runs ``--check``: a setting added or
changed without regenerating the table fails the tests.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from readme_table import main

from backend.settings import REPO_ROOT, Settings


def _default(value: Any) -> str:
    if value is None or value == "":
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        if value.is_absolute():
            return f"the repository's `{value.relative_to(REPO_ROOT)}/`"
        return f"`./{value}`"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int):
        return str(value)
    return f"`{value}`"


def _row(name: str, description: str | None, default: Any) -> str:
    if not description:
        raise SystemExit(f"backend/settings.py: the setting {name} has no description")
    meaning = description.replace("|", "\\|")
    return f"| `{name.upper()}` | {_default(default)} | {meaning} |"


def settings_table() -> str:
    """The markdown table, one row per setting, in declaration order."""
    rows = [_row(n, f.description, f.default) for n, f in Settings.model_fields.items()]
    return "\n".join(["| variable | default | meaning |", "| --- | --- | --- |", *rows])


if __name__ == "__main__":
    sys.exit(main("settings-table", __doc__.splitlines()[0], settings_table))
