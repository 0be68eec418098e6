"""docs/design.md's HTTP table names every route the API publishes in its OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path

from backend.openapi_document import document

DESIGN = Path(__file__).resolve().parent.parent / "docs" / "design.md"
# the table writes every path parameter naming a run or a sweep as {id}
RESOURCE_ID = re.compile(r"\{(run|sweep)_id\}")


def test_every_route_is_in_the_design_table() -> None:
    design = DESIGN.read_text(encoding="utf-8")
    table = design.split("## Public HTTP contract", 1)[1].split("\n## ", 1)[0]
    routes = [
        f"`{verb.upper()} {RESOURCE_ID.sub('{id}', path)}`"
        for path, operations in document()["paths"].items()
        for verb in operations
    ]
    assert len(routes) > 30
    missing = [route for route in routes if route not in table]
    assert not missing, f"docs/design.md's HTTP table lacks {missing}"
