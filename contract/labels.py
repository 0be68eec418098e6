"""A run's labels: the project it belongs to, the tags it is found by, a note a person wrote
about it, and the webhooks told of it (backend/alerts.py). Set at launch (run, sweep and
external-run requests), edited later on the run page (``PATCH /api/runs/{id}/labels``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import httpx
from pydantic import AfterValidator, Field, StringConstraints, model_validator

from contract.strict import StrictInput

# The longest name of a run or a sweep, project and tag (the database columns are as wide:
# backend/store/models.py). The client checks a run's name against its own copy, MAX_NAME
# in client/collapse_lab/wire.py (the client imports nothing of the server, the contract no
# numpy); tests/test_layers.py checks the two agree.
MAX_NAME_CHARS = 200
MAX_PROJECT_CHARS = 100
MAX_TAG_CHARS = 50

# A run's or a sweep's name: spaces around it are dropped, and one of spaces only refused
# (the pages would show an empty title, with nothing to click in the runs list)
RunName = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_NAME_CHARS)
]
ProjectName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_PROJECT_CHARS,
        pattern=r"^[\w.\- /]+$",
    ),
]
TagName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=MAX_TAG_CHARS, pattern=r"^[\w.\-:=+/]+$"
    ),
]


def _webhook_url(url: str) -> str:
    """An http(s) URL that the sender can post to (httpx parses it, and so does urllib when
    the receiver is named in the logs): else a ValueError that names the problem."""
    if any(char.isspace() for char in url):
        raise ValueError("a webhook URL has no spaces")
    try:
        urlsplit(url).port  # noqa: B018 -- raises for an unclosed [ or a port out of range
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as exc:
        raise ValueError(f"not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https"):
        raise ValueError("a webhook URL starts with http:// or https://")
    if not parsed.host:
        raise ValueError("the webhook URL names no host")
    if "%" in parsed.host:  # httpx escaped characters no host name may hold
        raise ValueError(f"the host {urlsplit(url).hostname!r} is no valid host name")
    return url


WebhookUrl = Annotated[str, StringConstraints(max_length=2000), AfterValidator(_webhook_url)]

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

    @model_validator(mode="after")
    def _one_project_change(self) -> LabelsEdit:
        if self.clear_project and self.project is not None:
            raise ValueError("project and clear_project contradict each other: send one of them")
        return self


def unique_tags(tags: list[str]) -> list[str]:
    """Tags in their first order, each once."""
    return list(dict.fromkeys(tags))
