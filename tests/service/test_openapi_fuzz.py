"""Schemathesis against /openapi.json of a live API (no workers): whatever it sends, the
answer is no 5xx, has a status code the schema declares, the declared content type, and a
body that matches the declared response schema. Bounded to a few examples per operation so
it runs in well under a minute."""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from tests.service.stack import ServiceStack

EXAMPLES_PER_OPERATION = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


def test_generated_requests_get_declared_statuses_and_conforming_bodies(
    idle_stack: ServiceStack,
) -> None:
    schema = schemathesis.openapi.from_url(f"{idle_stack.base_url}/openapi.json")
    # The event streams never end by design; test_run_lifecycle covers them.
    schema = schema.exclude(path_regex=r".*/events$")
    checked = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @hypothesis.given(case=operation.as_strategy())
        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
            database=None,
        )
        def conforms(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=idle_stack.base_url, checks=CHECKS, timeout=30)

        conforms()
        checked.append(operation.label)
    assert len(checked) >= 15, checked
