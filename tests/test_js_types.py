"""The dashboard's API types (frontend/js/types/api.d.ts) match the API the code publishes."""

from backend.openapi_document import TYPES_FILE, digest_line, document


def test_generated_types_are_those_of_the_current_openapi_document() -> None:
    first_line = TYPES_FILE.read_text(encoding="utf-8").splitlines()[0]
    assert first_line == digest_line(document()), (
        f"{TYPES_FILE} was generated from another OpenAPI document than the one the API "
        "publishes now: run `make js-types` and commit the result"
    )


def test_the_digest_changes_with_the_document() -> None:
    doc = document()
    changed = {**doc, "info": {**doc["info"], "title": doc["info"]["title"] + " (changed)"}}
    assert digest_line(changed) != digest_line(doc)
