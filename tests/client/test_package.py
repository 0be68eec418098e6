"""The package stands alone: it imports and works without torch and without the server's
``backend``/``workers`` packages, and installs by itself into a fresh environment."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

CLIENT_DIR = Path(__file__).resolve().parents[2] / "client"
LOCK = CLIENT_DIR.parent / "requirements" / "lock.txt"

# Runs in a subprocess whose import system refuses torch, lightning and the server's
# packages, so the check holds even in an environment where they are installed.
NO_SERVER_NO_TORCH = textwrap.dedent(
    """
    import sys
    FORBIDDEN = {"torch", "lightning", "pytorch_lightning", "backend", "workers"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in FORBIDDEN:
                raise ImportError(f"collapse_lab must not import {name}")
            return None

    sys.meta_path.insert(0, Refuse())
    import numpy as np
    import collapse_lab
    from collapse_lab import wire

    body = wire.encode_epoch(0, {"z": np.ones((4, 3))})
    assert wire.decode_epoch(body).z.shape == (4, 3)
    leaked = sorted(m for m in sys.modules if m.partition(".")[0] in FORBIDDEN)
    assert not leaked, leaked
    print("ok", collapse_lab.__version__)
    """
)


def test_imports_without_torch_or_server_code(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", NO_SERVER_NO_TORCH],
        cwd=tmp_path,  # not the repository root: backend/ and workers/ are not importable
        env={"PYTHONPATH": str(CLIENT_DIR), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok ")


def _lock_pins() -> list[str]:
    """The lock's ``name==version`` lines, without their hashes: pip reads a hash in a
    constraints file as a demand that every requirement be hashed, the local wheel too."""
    return [
        line.split()[0].lower()
        for line in LOCK.read_text(encoding="utf-8").splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    ]


@pytest.mark.slow
def test_installs_alone_into_a_fresh_environment(tmp_path: Path) -> None:
    """The client's wheel installed into a new venv brings numpy and httpx, not torch or the
    server. The wheel is built offline by this environment's setuptools (the lock's), and its
    dependencies are the lock's versions: no newer release changes what the test installs."""
    wheels = tmp_path / "wheels"
    offline = ["--no-deps", "--no-build-isolation", "--no-index"]
    source = shutil.copytree(CLIENT_DIR, tmp_path / "client")  # the build leaves build/ there
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", *offline, "-w", str(wheels), str(source)],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("collapse_lab_client-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    pins = _lock_pins()
    constraints = tmp_path / "lock-versions.txt"
    constraints.write_text("\n".join(pins) + "\n", encoding="utf-8")
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "-c", str(constraints), str(wheel)],
        check=True,
        timeout=600,
        cwd=tmp_path,
    )
    listed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze"],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.lower()
    assert "collapse-lab-client==" in listed
    locked = {pin for pin in pins if pin.startswith(("numpy==", "httpx=="))}
    assert len(locked) == 2 and locked <= set(listed.split())  # the lock's versions
    assert "torch==" not in listed and "collapse-lab==" not in listed
    result = subprocess.run(
        [python, "-c", NO_SERVER_NO_TORCH], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    typed = subprocess.run(
        [python, "-c", "import collapse_lab, pathlib; print(pathlib.Path(collapse_lab.__file__))"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert (Path(typed).parent / "py.typed").exists()  # type hints ship with it
