"""The API's OpenAPI document, from which the dashboard's TypeScript types are generated.

``make js-types`` writes the document with ``python -m backend.openapi_document PATH`` (which
prints the document's digest line), and ``frontend/js/types/api.d.ts`` is that line followed by
what openapi-typescript generates from the document. tests/test_js_types.py compares that line
with the digest of the document the code publishes today, so a changed request or response
model without ``make js-types`` fails a test.

The document is the one ``/openapi.json`` serves. It does not depend on the settings, but a
method plugin adds its request model to it: the committed types are those of the built-in
methods, generated (and tested) where no plugin is installed and ``METHOD_PLUGINS`` is unset.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

from backend.app import create_app

TYPES_FILE = Path(__file__).resolve().parent.parent / "frontend" / "js" / "types" / "api.d.ts"
DIGEST_PREFIX = "// OpenAPI document sha256: "


def document() -> dict[str, Any]:
    """The OpenAPI document of the API (what ``GET /openapi.json`` returns)."""
    return create_app().openapi()


def document_text(doc: dict[str, Any]) -> str:
    """One text per document: sorted keys, so the digest depends on the content only."""
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def digest_line(doc: dict[str, Any]) -> str:
    """The first line of the generated types: the digest of the document they come from."""
    digest = hashlib.sha256(document_text(doc).encode()).hexdigest()
    return f"{DIGEST_PREFIX}{digest} (make js-types writes this file)"


def main(argv: list[str]) -> int:
    """Write the document to the one path given and print its digest line."""
    if len(argv) != 1:
        print("usage: python -m backend.openapi_document PATH", file=sys.stderr)
        return 2
    doc = document()
    Path(argv[0]).write_text(document_text(doc), encoding="utf-8")
    print(digest_line(doc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
