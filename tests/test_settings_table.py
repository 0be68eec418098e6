"""README's configuration table is generated from the settings (scripts/settings_table.py):
every setting is documented there, with its default, as backend/settings.py declares it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from backend.settings import Settings, with_env_file

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


def test_the_services_get_the_dot_env_beneath_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `collapse-lab up` hands the processes it starts in the repository: the settings
    of the .env of its own directory (in any case, as Settings reads them; nothing else of
    the file), where a variable of the environment wins."""
    (tmp_path / ".env").write_text(
        "api_token=from-file\nMAX_EPOCHS=5\n# a comment\nPYTHONPATH=/elsewhere\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MAX_EPOCHS", raising=False)
    handed = with_env_file({"MAX_EPOCHS": "7", "PATH": "/usr/bin"})
    assert handed == {"api_token": "from-file", "MAX_EPOCHS": "7", "PATH": "/usr/bin"}
    assert Settings().max_epochs == 5  # what the launcher itself read (no env variable)
    (tmp_path / ".env").unlink()
    assert with_env_file({"PATH": "/usr/bin"}) == {"PATH": "/usr/bin"}
