"""What training raises, importable without torch (the command line loads torch only when it
trains: workers/cli.py)."""

from __future__ import annotations


class RunCancelled(Exception):
    """Raised by :func:`workers.engine.trainer.train` when ``hooks.should_stop()`` asked it
    to stop."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. the loss became NaN); the message says why."""
