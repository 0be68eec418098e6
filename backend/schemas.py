"""The HTTP contract: every JSON body the API accepts or returns, as pydantic models.

The routers declare these as ``response_model`` (so ``/openapi.json`` documents every
response and FastAPI checks what goes out) and build them from the store's rows with the
``*_from_row`` functions below, the one place where stored columns become public fields and
links are built. The run request (a union of one model per method, each documenting that
method's options and defaults) is the contract's (:mod:`contract.requests`), as are epoch
records, verdicts and statuses.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from collapse_lab import wire
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
)

from backend.broker import WorkerInfo
from backend.store.models import Projection, Run, Share
from contract import (
    DATASET_CLASSES,
    CauseGuard,
    EpochRecord,
    RunConfig,
    RunStatus,
    StrictInput,
    Verdict,
    VerdictKind,
)
from contract.labels import RunLabels, RunName

__all__ = ["EpochRecord"]  # re-exported: GET /api/runs/{id}/epochs is a list of them


def _time(timestamp: float | None) -> datetime | None:
    """The store's UNIX seconds as an aware UTC datetime (ISO 8601 on the wire)."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


# ---------------------------------------------------------------------------------------------
# errors


class ErrorResponse(BaseModel):
    """Any error but a validation error: 401, 404, 409..."""

    detail: str = Field(description="What went wrong, in one sentence.")


def _error_response(description: str) -> dict[str, Any]:
    # The schema inline rather than as ``model``: FastAPI would document a model under the
    # route's media type (text/html for a report), but errors are always JSON.
    schema = ErrorResponse.model_json_schema()
    return {"description": description, "content": {"application/json": {"schema": schema}}}


NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _error_response("No such run (or share).")}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: _error_response("The run's state does not allow it.")
}
UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: _error_response("Needs the API token (or, to read, a share link).")
}


# ---------------------------------------------------------------------------------------------
# runs


class Progress(BaseModel):
    """Where a running run is within its current epoch."""

    epoch: int = Field(description="The epoch being trained (1-based).")
    step: int = Field(description="Steps done in this epoch.")
    steps: int = Field(description="Steps per epoch.")
    images_per_s: float | None = Field(None, description="Training throughput.")
    fraction: float = Field(description="Fraction of the whole run done, 0..1.")


class ExternalSource(BaseModel):
    """Where an external run comes from (client/PROTOCOL.md): the keys the client sends
    today, each optional; keys a later client adds are kept and shown as they came."""

    model_config = ConfigDict(extra="allow")

    host: str | None = Field(None, description="The machine the training loop runs on.")
    script: str | None = Field(None, description="The script's file name.")
    client_version: str | None = Field(None, description="collapse_lab's version.")
    python: str | None = Field(None, description="The Python version.")
    integration: str | None = Field(None, description="'monitor' or 'lightning'.")

    # No return annotation on purpose: pydantic then documents the fields above as the
    # response schema (an annotated dict would document a bare object).
    @model_serializer(mode="wrap")
    def _as_sent(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """The keys the client sent, no more: an absent key is not shown as null."""
        return {k: v for k, v in handler(self).items() if v is not None}


class RunSummary(BaseModel):
    """A run as the run list shows it."""

    id: str
    url: str = Field(description="The run's page, e.g. /runs/<id>.")
    api_url: str = Field(description="This resource: /api/runs/<id>.")
    events_url: str = Field(description="Its Server-Sent Events stream.")
    epochs_url: str = Field(description="Its epoch records.")
    status: RunStatus
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = Field(description="When a worker first claimed it.")
    finished_at: datetime | None = Field(description="When it reached a final status.")
    method: str
    preset: str | None
    dataset: str
    num_classes: int | None = Field(
        description="Classes of the dataset (kNN chance = 1 / num_classes); null for an "
        "image folder, whose classes are its sub-folders."
    )
    backbone: str | None
    proj_dim: int | None
    seed: int | None
    options: dict[str, Any] = Field(description="The method's resolved options.")
    epochs: int = Field(description="Epochs the run trains.")
    last_epoch: int | None = Field(description="Last recorded epoch (0 = the untrained net).")
    progress: Progress | None = Field(description="Within the current epoch, while running.")
    verdict: Verdict | None = Field(description="The latest verdict (the run's, once done).")
    error: str | None = Field(description="Why it failed, in one line.")
    effective_rank_history: list[float | None] = Field(
        description="The projector's effective rank per epoch (index = epoch), for sparklines."
    )
    name: str | None = Field(
        None, description="Its name: an external run's as registered, else the preset or method."
    )
    project: str | None = Field(None, description="The project it belongs to.")
    tags: list[str] = Field(default_factory=list, description="Tags to find it by.")
    note: str = Field("", description="Free text a person wrote about it.")
    source: ExternalSource | None = Field(
        None, description="Where an external run comes from; null for a run trained here."
    )
    sweep_id: str | None = Field(None, description="The sweep this run belongs to, if any.")


class ExternalRunInfo(BaseModel):
    """What an external run (logged by collapse_lab.Monitor) brought along."""

    config: dict[str, Any] = Field(description="The researcher's own free-form config.")
    finish: dict[str, Any] | None = Field(
        description="The client's finish call (status, error, epochs_dropped, epochs_skipped); "
        "null while it still uploads."
    )


class Waiting(BaseModel):
    """Why a queued run has not started (computed when the run is read)."""

    reason: Literal[
        "no_gpu_worker", "no_worker", "no_worker_with_plugin", "sweep_concurrency", "behind_queue"
    ] = Field(
        description="no_gpu_worker: it asks for 'cuda' and no GPU worker is connected; "
        "no_worker: no training worker that takes its device is connected; "
        "no_worker_with_plugin: no connected worker has its (plugin) method; "
        "sweep_concurrency: its sweep holds it until one of its runs ends; "
        "behind_queue: the workers that can take it are busy with runs sent before it."
    )
    detail: str = Field(description="The same in one sentence, with the numbers.")
    ahead: int = Field(description="Queued runs sent to the workers before it.")


class RunDetail(RunSummary):
    """A run with its full config and the worker bookkeeping."""

    config: RunConfig | None = Field(
        description="The resolved config the run trains with; null for an external run."
    )
    request: dict[str, Any] = Field(
        description="The launch request as it was sent, less its alert receivers (webhook "
        "URLs are secrets: kept with the run, never served)."
    )
    attempts: int = Field(description="How many times a worker claimed it.")
    worker_losses: int = Field(description="Workers that went silent while running it.")
    worker_id: str | None
    heartbeat_at: datetime | None
    cancel_requested: bool
    last_event_id: int = Field(description="Sequence number of its latest stored event.")
    external: ExternalRunInfo | None = Field(
        None, description="An external run's own config and finish call; null for the others."
    )
    waiting: Waiting | None = Field(
        None,
        description="Why a queued run waits (GET /api/runs/{id}); null when it is not queued, "
        "when a free worker is about to take it, or when Redis cannot tell.",
    )


class RunEpochsExport(BaseModel):
    """A run's epochs as downloaded (``epochs.json``): the run beside its records."""

    run: RunDetail
    epochs: list[EpochRecord] = Field(description="The epoch records, in epoch order.")


class RunList(BaseModel):
    data: list[RunSummary] = Field(description="The page, newest first.")
    count: int = Field(description="Runs matching the filters (all pages).")


class ZooResult(BaseModel):
    data: list[RunDetail] = Field(description="The launched runs, one per preset.")
    count: int
    compare_url: str = Field(description="The comparison page of all of them.")


def _shown_source(source: dict[str, Any] | None) -> dict[str, Any] | None:
    """A stored source as ExternalSource shows it: the known keys as text (a row stored
    before they were typed may hold a number), the others as they came."""
    if source is None:
        return None
    known = ExternalSource.model_fields
    return {k: str(v) if k in known and v is not None else v for k, v in source.items()}


def _summary_fields(run: Run, rank_history: list[float | None]) -> dict[str, Any]:
    config = run.config
    fields: dict[str, Any] = {
        "id": run.id,
        "url": f"/runs/{run.id}",
        "api_url": f"/api/runs/{run.id}",
        "events_url": f"/api/runs/{run.id}/events",
        "epochs_url": f"/api/runs/{run.id}/epochs",
        "status": run.status,
        "created_at": _time(run.created_at),
        "updated_at": _time(run.updated_at),
        "started_at": _time(run.started_at),
        "finished_at": _time(run.finished_at),
        "method": run.method,
        "preset": run.preset,
        "dataset": run.dataset,
        "num_classes": DATASET_CLASSES.get(run.dataset),
        "backbone": config.get("backbone"),
        "proj_dim": config.get("proj_dim"),
        "seed": config.get("seed"),
        "options": config.get("options", {}),
        "epochs": run.epochs_shown,
        "last_epoch": run.last_epoch,
        "progress": run.progress,
        "verdict": run.verdict,
        "error": run.error,
        "effective_rank_history": rank_history,
        "name": run.name or (run.request.get("name") if run.source is not None else None),
        "project": run.project,
        "tags": run.tags or [],
        "note": run.note or "",
        "source": _shown_source(run.source),
        "sweep_id": run.sweep_id,
    }
    return fields


def shown_request(request: dict[str, Any]) -> dict[str, Any]:
    """A stored request as readers see it: without ``alerts``, whose webhook URLs (Slack's,
    Mattermost's) let whoever holds them post to the channel; backend/alerts.py reads them
    from the store."""
    return {key: value for key, value in request.items() if key != "alerts"}


def summary_from_row(run: Run, rank_history: list[float | None]) -> RunSummary:
    return RunSummary.model_validate(_summary_fields(run, rank_history))


def detail_from_row(run: Run, rank_history: list[float | None]) -> RunDetail:
    return RunDetail.model_validate(
        {
            **_summary_fields(run, rank_history),
            "config": None if run.source is not None else run.config,
            "request": shown_request(run.request),
            "attempts": run.attempts,
            "worker_losses": run.worker_losses,
            "worker_id": run.worker_id,
            "heartbeat_at": _time(run.heartbeat_at),
            "cancel_requested": run.cancel_requested,
            "last_event_id": run.last_event_seq,
            "external": None
            if run.source is None
            else {"config": run.request.get("config") or {}, "finish": run.external_finish},
        }
    )


# ---------------------------------------------------------------------------------------------
# projections, shares


class ProjectionEpochs(BaseModel):
    epochs: list[int] = Field(description="Epochs that have a 2-D projection, ascending.")


class ProjectionPoints(BaseModel):
    """An epoch's 2-D picture of the probe set, on one scale for the whole run."""

    epoch: int
    points: list[list[float]] = Field(description="[x, y] per probe image.")
    labels: list[int] = Field(description="The class of each point (monitoring only).")


def projection_from_row(row: Projection) -> ProjectionPoints:
    return ProjectionPoints(epoch=row.epoch, points=row.points, labels=row.labels)


class ShareOut(BaseModel):
    """A read-only link to one run or a comparison."""

    token: str = Field(description="The secret in the link.")
    kind: Literal["run", "compare", "sweep"]
    runs: list[str] = Field(description="The shared run ids.")
    sweep: str | None = Field(None, description="The shared sweep (kind 'sweep').")
    url: str = Field(description="The page to send: /s/<token>.")
    created_at: datetime
    revoked: bool


class ShareList(BaseModel):
    data: list[ShareOut] = Field(description="Active share links, newest first.")


def share_from_row(share: Share) -> ShareOut:
    return ShareOut(
        token=share.token,
        kind=share.kind,
        runs=share.run_ids,
        sweep=share.sweep_id,
        url=f"/s/{share.token}",
        created_at=datetime.fromtimestamp(share.created_at, UTC),
        revoked=share.revoked_at is not None,
    )


# ---------------------------------------------------------------------------------------------
# the methods catalogue


class MethodEntry(BaseModel):
    name: str
    title: str
    paper: str
    family: str
    options_schema: dict[str, Any] = Field(description="JSON Schema of the method's options.")
    options_defaults: dict[str, Any]
    defaults: dict[str, Any] = Field(description="RunConfig fields the method sets (lr...).")
    z_description: str = Field(
        description="What the diagnostics' z (the probe's embedding) is for this method, and why."
    )
    collapsed_loss: float | None = Field(
        description="The loss at the trivial solution (every image the same embedding), drawn "
        "on the loss chart; null: none is known."
    )
    plugin: str | None = Field(None, description="The plugin that brings it; null: built in.")


class PresetEntry(BaseModel):
    name: str
    title: str
    description: str
    method: str
    config: dict[str, Any] = Field(description="The partial run config the preset stands for.")
    expected: VerdictKind = Field(description="What the literature says should happen.")


class Limits(BaseModel):
    """This server's limits (MAX_EPOCHS...), beyond what the run config allows."""

    epochs: int
    batch_size: int
    probe_size: int
    train_size: int


class PluginProblem(BaseModel):
    plugin: str = Field(description="The entry point or METHOD_PLUGINS module.")
    error: str = Field(description="Why it was left out.")


class Catalogue(BaseModel):
    methods: list[MethodEntry]
    presets: list[PresetEntry]
    config_schema: dict[str, Any] = Field(description="JSON Schema of a resolved run config.")
    config_defaults: dict[str, Any] = Field(description="The generic RunConfig defaults.")
    datasets: list[str]
    dataset_classes: dict[str, int | None] = Field(description="Classes per dataset.")
    limits: Limits
    plugin_errors: list[PluginProblem] = Field(
        default_factory=list, description="Method plugins that failed to load, and why."
    )
    cause_guards: list[CauseGuard] = Field(
        default_factory=list,
        description="The guards a verdict's cause may name (docs/causes.md), in order.",
    )
    zoo_fields: list[str] = Field(
        description="The run-config fields the zoo sets for every preset (what it trains on, "
        "for how long, the seed, the device); the rest is each preset's own."
    )


# ---------------------------------------------------------------------------------------------
# health


class DatabaseHealth(BaseModel):
    ok: bool
    backend: Literal["sqlite", "postgresql"]
    error: str | None = None


class RedisHealth(BaseModel):
    ok: bool
    error: str | None = None


class WorkersHealth(BaseModel):
    ok: bool = Field(description="At least one train worker announced itself recently.")
    count: int
    train: int
    gpu: int = Field(description="Workers that take GPU runs (queue train.gpu).")
    projection: int
    ingest: int = Field(
        description="Workers that measure external runs' uploads (queue ingest; the "
        "projection workers take it too)."
    )
    items: list[WorkerInfo]
    error: str | None = None


class AuthInfo(BaseModel):
    write_protected: bool = Field(description="Launching and cancelling need the API token.")
    private: bool = Field(description="Reading needs the token or a share link.")


class AlertsHealth(BaseModel):
    """Webhook deliveries (backend/alerts.py); a receiver's failures do not degrade status."""

    receivers: int = Field(description="Server-wide receivers (ALERT_WEBHOOKS).")
    pending: int = Field(description="Alerts not delivered yet (new or retrying).")
    retrying: int = Field(description="Pending alerts whose receiver failed at least once.")
    delivered: int
    failed: int = Field(description="Alerts given up after ALERT_RETRY_FOR_S.")
    last_error: str | None = Field(None, description="The latest failure, e.g. 'HTTP 500: ...'.")
    last_error_receiver: str | None = Field(
        None,
        description="Where the latest failure went: the receiver's scheme, host and a short "
        "hash of its URL, never the URL (a webhook URL is a secret).",
    )


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    database: DatabaseHealth
    redis: RedisHealth
    workers: WorkersHealth
    auth: AuthInfo
    alerts: AlertsHealth | None = Field(None, description="None while the database is down.")
    version: str


# ---------------------------------------------------------------------------------------------
# external runs (client/PROTOCOL.md)


# Levels of arrays and objects a free-form config may nest: a hydra config nests a dozen;
# pydantic's serialisation stops between 200 and 300 (a 500 before this bound, found by an
# audit), the JSON parser itself near 3,000.
MAX_CONFIG_DEPTH = 64


def _finite_json(value: dict[str, Any]) -> dict[str, Any]:
    """Free-form JSON without NaN or infinity (JSON has neither: they would be stored as
    null), refused as a run request's numbers are, naming where the first one is; nested at
    most ``MAX_CONFIG_DEPTH`` levels."""
    stack: list[tuple[str, Any, int]] = [("config", value, 1)]
    while stack:  # not recursive: a deeply nested config is no RecursionError
        where, item, depth = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"Input should be a finite number: {where} is {item}")
        if isinstance(item, dict | list) and depth > MAX_CONFIG_DEPTH:
            raise ValueError(
                f"Input should nest at most {MAX_CONFIG_DEPTH} levels of arrays and objects: "
                f"config nests deeper at {where[:60]}{'...' if len(where) > 60 else ''}"
            )
        if isinstance(item, dict):
            stack.extend(
                (f"{where}.{key}", child, depth + 1) for key, child in reversed(item.items())
            )
        elif isinstance(item, list):
            stack.extend(
                (f"{where}[{i}]", child, depth + 1) for i, child in reversed(list(enumerate(item)))
            )
    return value


class ExternalRunCreate(RunLabels):
    """Registration of a run logged from the researcher's own training loop, with its labels
    (project, tags, note, alerts)."""

    name: RunName = Field(description="Shown as the run's name.")
    config: Annotated[dict[str, Any], AfterValidator(_finite_json)] = Field(
        default_factory=dict,
        description="The researcher's hyperparameters, free-form JSON (its numbers finite).",
    )
    source: ExternalSource = Field(
        default_factory=ExternalSource, description="Where the run comes from."
    )
    resume_key: str | None = Field(
        None,
        min_length=1,
        max_length=wire.MAX_RESUME_KEY,
        description="Continue the run registered with this key, if any (a restarted job: its "
        "SLURM job id, torchrun run id, or the key a Lightning checkpoint kept); a run the "
        "client had finished is reopened, a cancelled one refused (409 run_cancelled).",
    )


class ExternalLimits(BaseModel):
    max_probe_size: int = Field(description="MAX_PROBE_SIZE: the most probe rows N (and M).")
    max_epoch_bytes: int = Field(description="MAX_EPOCH_BYTES: the largest epoch upload.")


class ExternalRunCreated(BaseModel):
    id: str
    url: str = Field(description="The run's page, /runs/<id>.")
    status: RunStatus
    limits: ExternalLimits
    resumed: bool = Field(
        False, description="True when resume_key found an existing run: this reply continues it."
    )
    last_epoch: int | None = Field(
        None, description="The highest epoch the run already holds (uploaded); null for none."
    )
    reopened_finish: dict[str, Any] | None = Field(
        None,
        description="The finish call that had closed the run, when this registration reopened "
        "it: a client that finds its own finish stale (the run went on elsewhere) sends this "
        "one again to close the run as it was.",
    )
    accepts: list[str] = Field(
        description="The arrays this server reads in an epoch message (client/PROTOCOL.md): "
        "a client sends the method internals (target, p, teacher...) only when listed; a "
        "server that predates them answers without this field."
    )


class ExternalEpochReply(BaseModel):
    epoch: int
    status: Literal["accepted", "duplicate"] = Field(
        description="accepted (202): stored, its diagnostics queued; duplicate (200): this "
        "epoch was already stored with the same bytes."
    )


# An epoch a finish call names: within 0..wire.MAX_EPOCH, as an uploaded epoch is.
FinishEpoch = Annotated[int, Field(ge=0, le=wire.MAX_EPOCH)]


class ExternalRunFinish(StrictInput):
    """The client's last call: how the training ended and what it did not deliver."""

    status: Literal["succeeded", "failed"]
    error: str | None = Field(
        None, max_length=wire.MAX_ERROR, description="ExceptionType: message."
    )
    epochs_dropped: list[FinishEpoch] = Field(
        default_factory=list, description="Logged but not delivered (buffer full, refused)."
    )
    epochs_skipped: list[FinishEpoch] = Field(
        default_factory=list, description="Not sent: the arrays held NaN or infinity."
    )
    stopped_at_epoch: FinishEpoch | None = Field(
        None, description="The client stopped training after this epoch (stop on collapse)."
    )
    stop_reason: str | None = Field(
        None,
        max_length=wire.MAX_STOP_REASON,
        description="Why the client stopped, shown on the run page.",
    )


class ExternalFinishReply(BaseModel):
    id: str
    status: Literal["succeeded", "failed"]
