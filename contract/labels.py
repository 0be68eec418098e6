"""A run's labels: the project it belongs to, the tags it is found by, a note a person wrote
about it, and the webhooks told of it (backend/alerts.py). Set at launch (run, sweep and
external-run requests), edited later on the run page (``PATCH /api/runs/{id}/labels``)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from contract.strict import StrictInput

ProjectName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[\w.\- /]+$"),
]
TagName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=50, pattern=r"^[\w.\-:=+/]+$"
    ),
]
WebhookUrl = Annotated[str, StringConstraints(max_length=2000, pattern=r"^https?://[^\s]+$")]

MAX_TAGS = 20
MAX_NOTE_CHARS = 10_000
MAX_ALERT_RECEIVERS = 10


class RunLabels(StrictInput):
    """Labels a request may carry (every field optional)."""

    project: ProjectName | None = Field(
        None, description="The project the run belongs to (letters, digits, space, . - _ /)."
    )
    tags: list[TagName] = Field(
        default_factory=list, max_length=MAX_TAGS, description="Tags to find the run by."
    )
    note: str = Field("", max_length=MAX_NOTE_CHARS, description="Free text about the run.")
    alerts: list[WebhookUrl] = Field(
        default_factory=list,
        max_length=MAX_ALERT_RECEIVERS,
        description="Webhook URLs told when the run collapses, recovers, gets a cause, fails "
        "or finishes (beside the server's ALERT_WEBHOOKS).",
    )


class LabelsEdit(StrictInput):
    """``PATCH /api/runs/{id}/labels``: the fields given replace the run's; absent ones stay."""

    project: ProjectName | None = Field(None, description="A new project; '' is refused.")
    clear_project: bool = Field(False, description="Remove the run from its project.")
    tags: list[TagName] | None = Field(None, max_length=MAX_TAGS)
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS)


def unique_tags(tags: list[str]) -> list[str]:
    """Tags in their first order, each once."""
    return list(dict.fromkeys(tags))
