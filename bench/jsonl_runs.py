"""Reading the ``--jsonl`` file ``collapse-lab train`` writes (workers/cli.py): one epoch
record per line, then a line holding the run's verdict."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def read_run(path: Path) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(epoch records, verdict) of one ``--jsonl`` file."""
    records, verdict = [], {}
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if "verdict" in record and "epoch" not in record:
            verdict = record["verdict"]
        else:
            records.append(record)
    return records, verdict
