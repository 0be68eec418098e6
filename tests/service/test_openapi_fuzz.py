"""Schemathesis against /openapi.json of a live API (no workers): no request, however odd,
gets a 5xx. Bounded to a few examples per operation so it runs in well under a minute."""

from __future__ import annotations

import hypothesis
import schemathesis
from schemathesis.checks import not_a_server_error

from tests.service.stack import ServiceStack

EXAMPLES_PER_OPERATION = 10


def test_no_generated_request_gets_a_server_error(idle_stack: ServiceStack) -> None:
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
        def no_server_error(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=idle_stack.base_url, checks=[not_a_server_error], timeout=30
            )

        no_server_error()
        checked.append(operation.label)
    assert len(checked) >= 15, checked
