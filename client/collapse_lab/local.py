"""Offline runs: a run written to a local directory instead of a server, synced later
(``python -m collapse_lab sync DIR URL``, :mod:`collapse_lab.sync`).

A run directory holds::

    run.json                  what registration would send (name, config, source, resume
                              key) and the Idempotency-Key the sync registers with
    epochs/000003.clepoch     one epoch message each, in the wire format (``wire.py``),
                              exactly the bytes an online monitor would have uploaded
    finish.json               the finish call's body, once the run ended
    sync.json                 written by the sync: per server, the run id and the epochs
                              it already took

Every file is written to a temporary name and renamed into place (``os.replace``, atomic
on POSIX file systems, NFS included), so a reader (``sync --follow`` on a login node)
never sees half a file and a job killed mid-write leaves no truncated epoch behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from pathlib import Path
from typing import Any

RUN_FILE = "run.json"
FINISH_FILE = "finish.json"
SYNC_FILE = "sync.json"
EPOCHS_DIR = "epochs"
EPOCH_SUFFIX = ".clepoch"
FORMAT = "collapse-lab-run"
FORMAT_VERSION = 1
DEFAULT_ROOT = "collapse-lab-runs"


class NotARunError(ValueError):
    """A directory that is not a readable run directory; the text says why."""


def _write_temporary(path: Path, data: bytes) -> Path:
    """``data`` in a new temporary file beside ``path``, on disk."""
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:  # a full disk: no half-written temporary file left behind
        temporary.unlink(missing_ok=True)
        raise
    return temporary


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file renamed into place."""
    temporary = _write_temporary(path, data)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_new(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` whole unless ``path`` exists; False when it does. Two
    processes writing one run (a job and its requeued try, at once) cannot replace each
    other's file: the hard link that puts the file in place fails if another is there."""
    temporary = _write_temporary(path, data)
    try:
        os.link(temporary, path)
    except FileExistsError:
        return False
    except OSError:  # a file system without hard links: checked, then renamed
        if path.exists():
            return False
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return True


def write_json(path: Path, value: dict[str, Any]) -> None:
    write_atomic(path, json.dumps(value, indent=1, allow_nan=False).encode())


def default_root() -> Path:
    return Path(os.environ.get("COLLAPSE_LAB_DIR") or DEFAULT_ROOT)


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "run"


def directory_name(name: str, resume_key: str | None) -> str:
    """A run's directory name: its resume key when it has one (a requeued job writes on
    into the same directory), else the name, the time and a random suffix. A key that is
    not a safe file name as it is gets a digest of itself after its safe form, so keys
    that read alike once made safe ("slurm:1:教师", "slurm:1:学生") get directories of
    their own."""
    if not resume_key:
        return _safe_name(f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}")
    safe = _safe_name(resume_key)
    if safe == resume_key:
        return safe
    return f"{safe}-{hashlib.sha256(resume_key.encode()).hexdigest()[:12]}"


def run_directory(root: Path, name: str, resume_key: str | None) -> Path:
    """Where a run of ``name`` under ``resume_key`` is written below ``root``: the
    :func:`directory_name`, or the directory an earlier client release wrote for the same
    key (the key's safe form alone, without the digest), so a job requeued across an
    upgrade continues its run."""
    path = root / directory_name(name, resume_key)
    if not resume_key or (path / RUN_FILE).exists():
        return path
    earlier = root / _safe_name(resume_key)
    try:
        registration = read_meta(earlier)["registration"]
    except NotARunError:
        return path
    return earlier if registration.get("resume_key") == resume_key else path


def epoch_path(run_dir: Path, epoch: int) -> Path:
    return run_dir / EPOCHS_DIR / f"{epoch:06d}{EPOCH_SUFFIX}"


def create(run_dir: Path, registration: dict[str, Any], idempotency_key: str) -> dict[str, Any]:
    """A new run directory, or the one a resumed run left (its run.json kept, its
    finish.json removed: the run goes on). Returns the run.json content. run.json comes
    before the epochs folder, so a directory with epochs and no run.json is never one being
    created (:func:`find_orphans`). A directory that cannot be made is a ValueError naming it."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(
            f"cannot make the run's directory {run_dir} ({error.strerror or error}): give "
            "run_dir (or COLLAPSE_LAB_DIR) a folder you can write"
        ) from None
    if (run_dir / RUN_FILE).exists():
        meta = read_meta(run_dir)
        (run_dir / FINISH_FILE).unlink(missing_ok=True)
    else:
        meta = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "created_at": time.time(),
            "idempotency_key": idempotency_key,
            "registration": registration,
        }
        write_json(run_dir / RUN_FILE, meta)
    (run_dir / EPOCHS_DIR).mkdir(exist_ok=True)
    return meta


def read_meta(run_dir: Path) -> dict[str, Any]:
    """run.json, checked; :class:`NotARunError` naming the problem otherwise."""
    path = run_dir / RUN_FILE
    if not run_dir.is_dir():
        raise NotARunError(f"{run_dir}: not a directory")
    if not path.is_file():
        raise NotARunError(f"{run_dir}: not a Collapse Lab run directory (no {RUN_FILE})")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise NotARunError(f"{path}: unreadable ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NotARunError(f"{path}: not a Collapse Lab run file")
    if meta.get("version") != FORMAT_VERSION:
        raise NotARunError(
            f"{path}: run format version {meta.get('version')}, this client reads "
            f"{FORMAT_VERSION}: upgrade collapse-lab-client"
        )
    if not isinstance(meta.get("registration"), dict) or not meta.get("idempotency_key"):
        raise NotARunError(f"{path}: no registration or idempotency_key")
    return meta


def stored_epochs(run_dir: Path) -> dict[int, Path]:
    """The epoch files of a run, by epoch (temporary files of a write in progress left out)."""
    epochs = {}
    for path in (run_dir / EPOCHS_DIR).glob(f"*{EPOCH_SUFFIX}"):
        if path.stem.isdigit():
            epochs[int(path.stem)] = path
    return dict(sorted(epochs.items()))


def read_finish(run_dir: Path) -> dict[str, Any] | None:
    path = run_dir / FINISH_FILE
    try:
        finish = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise NotARunError(f"{path}: unreadable ({error})") from error
    return finish if isinstance(finish, dict) else None


def find_orphans(path: Path) -> list[Path]:
    """The directories right below the folder ``path`` that hold an epochs folder but no
    run.json (a run directory copied without it): they cannot be synced, and are named."""
    if (path / RUN_FILE).exists() or not path.is_dir():
        return []
    return sorted(
        p for p in path.iterdir() if (p / EPOCHS_DIR).is_dir() and not (p / RUN_FILE).exists()
    )


def find_runs(path: Path) -> list[Path]:
    """``path`` itself when it is a run directory, else the run directories right below it
    (``COLLAPSE_LAB_DIR`` holds one per run); empty when there are none."""
    if (path / RUN_FILE).exists():
        return [path]
    if not path.is_dir():
        return []
    return sorted(p for p in path.iterdir() if (p / RUN_FILE).exists())
