"""README's configuration table is generated from the settings (scripts/settings_table.py):
every setting is documented there, with its default, as backend/settings.py declares it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from backend.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_the_readme_table_is_generated_from_the_settings() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/settings_table.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for name, field in Settings.model_fields.items():
        assert field.description, f"the setting {name} has no description"
        assert f"| `{name.upper()}` |" in readme
