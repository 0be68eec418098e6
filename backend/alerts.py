"""Alerts: webhooks told when a run collapses, recovers, gets a cause, fails or finishes, and
when a sweep finishes.

Receivers: every URL in ``ALERT_WEBHOOKS`` (server-wide), plus the ``alerts`` URLs of a run's
launch request and of its sweep's request. One background thread per API process scans the
event log (the same log the live pages read, :mod:`backend.store.eventlog`), queues one
delivery per alert and receiver (:mod:`backend.store.alerts`) and posts them: JSON
(:class:`AlertBody`) whose ``text`` Slack's and Mattermost's incoming webhooks show as it is.
Each alert is delivered at most once per receiver. A post that surely did not arrive (the
connection was refused or never made) or that the receiver answered with 5xx, 408, 425 or
429 is retried with exponential backoff (2, 4, 8 ... 60 s) for ``ALERT_RETRY_FOR_S``
seconds, then given up. A post that was sent and got no answer within ``ALERT_TIMEOUT_S``
(a slow receiver, a connection dropped mid-answer) may have arrived: it is not sent again
but given up at once, its error saying so, as is one the receiver refused with another 4xx.
Failures show in ``GET /api/health``. Training and the API never wait for a receiver. Each
alert carries an idempotency key (body ``key`` and header ``Idempotency-Key``): it is queued
once per receiver, and a receiver sees it twice only if a sender died between posting it and
recording the answer. Each post is sent off on its own and its answer recorded when it comes
(:class:`Senders`): a slow receiver delays no other receiver's alerts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, Field

from backend.dispatch import housekeeping
from backend.settings import Settings
from backend.store import alerts as alert_store
from backend.store.alerts import Announced, QueuedAlert, RunReading, ScanPass
from backend.store.database import Database
from backend.store.eventlog import FINISHED, FINISHED_BY_CLIENT
from backend.store.models import AlertDelivery, Run
from contract import ENDED_EARLY_STATUSES, TERMINAL_STATUSES, VERDICT_LABELS, VerdictKind

log = logging.getLogger(__name__)

AlertEvent = Literal[
    "collapse_onset", "recovery", "cause", "failed", "succeeded", "cancelled", "sweep_finished"
]
ALERT_INTERVAL_S = 1.0
MAX_BACKOFF_S = 60.0
SENDERS = 8  # receivers posted to at once, one post each: a slow one holds up no other
# a receiver's answers that say it did not take the alert and may take it later
RETRY_STATUSES = frozenset({408, 425, 429})
# errors raised before the request left: the receiver surely has nothing
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class AlertRun(BaseModel):
    id: str
    url: str
    name: str
    method: str
    dataset: str
    status: str = Field(
        description="The run's status when the alert was posted: an epoch synced later, or an "
        "alert that waited for its receiver, may raise its onset after the run ended."
    )
    sweep_id: str | None


class AlertSweep(BaseModel):
    id: str
    url: str
    name: str | None
    runs: int
    verdicts: dict[str, int] = Field(description="How many of its runs ended in each kind.")


class AlertBody(BaseModel):
    """What a webhook receives."""

    key: str = Field(description="Idempotency key: the same alert always has the same key.")
    event: AlertEvent
    text: str = Field(description="One line for a chat channel (Slack, Mattermost).")
    run: AlertRun | None = None
    sweep: AlertSweep | None = None
    epoch: int | None = Field(None, description="The epoch whose record raised the alert.")
    verdict: dict[str, Any] | None = None
    cause: dict[str, Any] | None = None
    numbers: dict[str, float | None] = Field(
        default_factory=dict, description="The projector's numbers at that epoch."
    )
    error: str | None = None


def _run_name(run: Run) -> str:
    request = run.request or {}
    return str(request.get("name") or run.preset or run.method)


def _alert_run(run: Run, settings: Settings) -> AlertRun:
    return AlertRun(
        id=run.id,
        url=f"{settings.public_base_url}/runs/{run.id}",
        name=_run_name(run),
        method=run.method,
        dataset=run.dataset,
        status=run.status,
        sweep_id=run.sweep_id,
    )


def _verdict_words(kind: object) -> str:
    """A verdict kind as the alerts say it ("complete collapse"); "no verdict" for none."""
    if not kind:
        return "no verdict"
    return VERDICT_LABELS.get(cast(VerdictKind, kind), str(kind).replace("_", " "))


def _sentence(text: object) -> str:
    """``text`` as a sentence of an alert: its first letter a capital (a verdict's reason
    starts lower-case, as it follows a colon on the page); "" for none."""
    words = str(text or "").strip()
    return words[:1].upper() + words[1:]


def _numbers(record: dict[str, Any]) -> dict[str, float | None]:
    """The projector's numbers of an epoch record; none for a run that has no epoch."""
    if "projector" not in record:
        return {}
    projector = record.get("projector") or {}
    return {
        "effective_rank": projector.get("effective_rank"),
        "std_l2_sqrt_d": projector.get("std_l2_sqrt_d"),
        "knn_top1": projector.get("knn_top1"),
        "loss": record.get("loss"),
    }


def _receivers(request: dict[str, Any] | None) -> list[str]:
    return [str(url) for url in (request or {}).get("alerts") or []]


class _RunAlerts:
    """Walks one run's unread events and collects what to announce."""

    def __init__(
        self,
        reading: RunReading,
        settings: Settings,
        epoch_record: Callable[[str, int], dict[str, Any] | None],
    ) -> None:
        self.reading = reading
        self.epoch_record = epoch_record
        self.run = _alert_run(reading.run, settings)
        own = _receivers(reading.run.request)
        from_sweep = _receivers(reading.sweep.request) if reading.sweep else []
        self.receivers = list(dict.fromkeys([*settings.alert_webhook_urls, *own, *from_sweep]))
        # the sweep's receivers hear of its runs' troubles, and of the sweep's end
        self.quiet_receivers = list(dict.fromkeys([*settings.alert_webhook_urls, *own]))
        self.verdict_kind = reading.announced.verdict_kind
        self.cause = reading.announced.cause
        self.last_epoch = reading.announced.last_epoch
        self.last_end = reading.announced.last_end
        self.alerts: list[QueuedAlert] = []
        # "(simsiam on digits)"; an external run (a source) has no method or dataset of ours
        external = reading.run.source is not None
        self.what = "" if external else f" ({self.run.method} on {self.run.dataset})"

    def _queue(self, body: AlertBody, receivers: list[str]) -> None:
        self.alerts += [
            QueuedAlert(body.key, url, body.model_dump(mode="json")) for url in receivers
        ]

    def on_verdict(self, seq: int, verdict: dict[str, Any], record: dict[str, Any]) -> None:
        kind = str(verdict.get("kind"))
        epoch = record.get("epoch")
        name = self.run.name
        if kind != self.verdict_kind:
            collapsed = kind != "healthy"
            event: AlertEvent = "collapse_onset" if collapsed else "recovery"
            words = _verdict_words(kind)
            reason = _sentence(verdict.get("reason"))
            text = (
                f"Run {name}{self.what}: {words} from epoch "
                f"{verdict.get('onset_epoch')}. {reason} {self.run.url}"
                if collapsed
                else f"Run {name}{self.what} is healthy again at epoch {epoch}. {reason} "
                f"{self.run.url}"
            )
            self._queue(
                AlertBody(
                    key=f"run:{self.run.id}:{seq}:{event}",
                    event=event,
                    text=text,
                    run=self.run,
                    epoch=epoch,
                    verdict=verdict,
                    cause=verdict.get("cause"),
                    numbers=_numbers(record),
                ),
                self.receivers,
            )
            self.verdict_kind = kind
        cause = verdict.get("cause")
        guard = cause.get("guard") if isinstance(cause, dict) else None
        # "undetermined" names no guard: the collapse alert already said what is known
        if isinstance(cause, dict) and guard and guard != "undetermined" and guard != self.cause:
            self._queue(
                AlertBody(
                    key=f"run:{self.run.id}:{seq}:cause",
                    event="cause",
                    text=f"Run {name} collapsed because of its {guard.replace('_', ' ')}: "
                    f"{cause.get('reason', '')} {cause.get('advice') or ''} {self.run.url}",
                    run=self.run,
                    epoch=epoch,
                    verdict=verdict,
                    cause=cause,
                    numbers=_numbers(record),
                ),
                self.receivers,
            )
        self.cause = guard

    def on_epoch(self, seq: int, record: dict[str, Any]) -> None:
        """An epoch record's verdict, unless the record is older than one already read: an
        epoch uploaded after later ones (a sync of an offline part) was judged over the
        epochs before it, and the run's own verdict is its last epoch's (revised records of
        that epoch come again: backend/store/epochs.py ``revise_verdicts``)."""
        epoch = record.get("epoch")
        if isinstance(epoch, int):
            if self.last_epoch is not None and epoch < self.last_epoch:
                return
            self.last_epoch = epoch
        self.on_verdict(seq, record["verdict"], record)

    def on_status(self, seq: int, data: dict[str, Any]) -> None:
        status = data.get("status")
        if status not in TERMINAL_STATUSES:
            return
        verdict = data.get("verdict") or None
        last_epoch = data.get("last_epoch")
        # the end is told with the numbers of the run's last epoch
        stored = self.epoch_record(self.run.id, last_epoch) if isinstance(last_epoch, int) else None
        record = stored or {"epoch": last_epoch}
        if verdict:  # the run's final verdict may differ from its last epoch's
            self.on_verdict(seq, verdict, record)
        kind = (verdict or {}).get("kind")
        if status == "failed":
            text = f"Run {self.run.name} failed: {data.get('error')} {self.run.url}"
        elif status == "cancelled":
            text = f"Run {self.run.name} was cancelled. {self.run.url}"
        else:
            words = _verdict_words(kind)
            ending = data.get("reason")  # a stop on collapse, epochs the client lacked...
            plain = ending in (FINISHED, FINISHED_BY_CLIENT)
            how = f"{_sentence(ending)}. " if ending and not plain else ""
            text = (
                f"Run {self.run.name}{self.what} finished: {words}. {how}"
                f"{_sentence((verdict or {}).get('reason'))} {self.run.url}"
            )
        body = AlertBody(
            # the event's seq: a reopened run that fails or finishes again is told again
            key=f"run:{self.run.id}:{seq}:{status}",
            event=status,
            text=text,
            run=self.run.model_copy(update={"status": status}),
            epoch=last_epoch,
            verdict=verdict,
            cause=(verdict or {}).get("cause"),
            numbers=_numbers(record),
            error=data.get("error"),
        )
        # a run reopened and closed again as it was (a late sync of an offline copy) has
        # nothing new to tell; one that trained on or ended otherwise is told again
        end = json.dumps([status, kind, last_epoch, data.get("error")])
        end_digest = hashlib.sha256(end.encode()).hexdigest()
        if end_digest != self.last_end:
            # a sweep's receivers hear of a failure; its successes come as the sweep's summary
            self._queue(body, self.receivers if status == "failed" else self.quiet_receivers)
        self.last_end = end_digest

    def announced(self) -> Announced:
        return Announced(self.verdict_kind, self.cause, self.last_epoch, self.last_end)


def sweep_outcomes(statuses: list[tuple[str, str | None]]) -> Counter[str]:
    """How a finished sweep's runs ended, from each run's (status, verdict kind): a
    succeeded run by its verdict, one cancelled or failed partway by its status (its
    verdict is that of its last epoch, not of its schedule)."""
    return Counter(
        status if status in ENDED_EARLY_STATUSES or not kind else kind for status, kind in statuses
    )


def _sweep_finished(scan: ScanPass, reading: RunReading, settings: Settings) -> list[QueuedAlert]:
    sweep = reading.sweep
    if sweep is None:
        return []
    statuses = scan.sweep_statuses(sweep.id)
    if any(status not in TERMINAL_STATUSES for status, _ in statuses):
        return []
    kinds = sweep_outcomes(statuses)
    url = f"{settings.public_base_url}/sweeps/{sweep.id}"
    summary = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(kinds.items()))
    body = AlertBody(
        key=f"sweep:{sweep.id}:finished",
        event="sweep_finished",
        text=f"Sweep {sweep.name or sweep.id} finished: {len(statuses)} runs ({summary}). {url}",
        sweep=AlertSweep(
            id=sweep.id, url=url, name=sweep.name, runs=len(statuses), verdicts=dict(kinds)
        ),
    )
    receivers = dict.fromkeys([*settings.alert_webhook_urls, *_receivers(sweep.request)])
    return [QueuedAlert(body.key, url_, body.model_dump(mode="json")) for url_ in receivers]


def scan_once(db: Database, settings: Settings, limit: int = 200) -> int:
    """Read the runs' new events and queue their alerts; returns how many were queued."""
    queued = 0
    with alert_store.scan_pass(db) as scan:
        started_at = scan.started_at()
        for reading in scan.unread(limit):
            run = reading.run
            last_seq = reading.events[-1].seq if reading.events else run.last_event_seq
            if reading.last_seq is None and run.created_at < started_at:
                # history from before alerts were on: read silently
                silently = Announced(run.verdict_kind or "healthy", last_epoch=run.last_epoch)
                scan.advance(reading, run.last_event_seq, silently, [])
                continue
            walk = _RunAlerts(reading, settings, scan.epoch_record)
            finished = False
            for event in reading.events:
                if event.type == "epoch" and event.data.get("verdict"):
                    walk.on_epoch(event.seq, event.data)
                elif event.type == "status":
                    walk.on_status(event.seq, event.data)
                    finished = finished or event.data.get("status") in TERMINAL_STATUSES
            alerts = walk.alerts
            if finished:
                alerts += _sweep_finished(scan, reading, settings)
            if scan.advance(reading, last_seq, walk.announced(), alerts):
                queued += len(alerts)
    return queued


def receiver_label(url: str) -> str:
    """A receiver as ``GET /api/health`` and the logs name it: scheme, host and a short hash
    of the whole URL, since the path of a Slack or Mattermost webhook is its secret."""
    digest = hashlib.sha256(url.encode(errors="replace")).hexdigest()[:8]
    try:
        parts = urlsplit(url)
    except ValueError:  # ALERT_WEBHOOKS is not checked (nor were earlier releases' requests)
        return f"{url.partition(':')[0][:10] or '?'}://? #{digest}"
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a port that is no number
        port = ""
    return f"{parts.scheme}://{parts.hostname or '?'}{port} #{digest}"


_OLD_HTTP_ERROR = re.compile(r"^HTTP (\d{3}): ")


def public_error(error: str | None) -> str | None:
    """A stored error as ``GET /api/health`` shows it: earlier releases kept the start of
    the receiver's reply (``HTTP 403: <body>``), shown now as its status only."""
    if error is None:
        return None
    old = _OLD_HTTP_ERROR.match(error)
    return f"HTTP {old.group(1)}" if old else error


@dataclass(frozen=True)
class PostFailure:
    """What went wrong with a post (without the receiver's URL); ``retry``: the receiver
    surely did not take the alert, so it may be sent again."""

    error: str
    retry: bool


def _post(client: httpx.Client, delivery: AlertDelivery) -> PostFailure | None:
    """Post one delivery; None when the receiver took it."""
    try:
        response = client.post(
            delivery.url,
            json=delivery.body,
            headers={"Idempotency-Key": delivery.key, "User-Agent": "collapse-lab-alerts"},
        )
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}: {exc}".replace(delivery.url, receiver_label(delivery.url))
        if isinstance(exc, NOT_SENT):
            return PostFailure(error, retry=True)
        return PostFailure(
            f"{error}: sent without an answer, so not sent again (at most once); the "
            "receiver may have it",
            retry=False,
        )
    except Exception as exc:  # a URL httpx cannot post to (InvalidURL...): never retried
        label = receiver_label(delivery.url)
        error = f"{type(exc).__name__}: {exc}".replace(delivery.url, label)
        return PostFailure(f"{error} (cannot be sent: not sent again)", retry=False)
    if response.is_success:
        return None
    status = response.status_code
    # the status only, never the reply's body: a receiver's answer is no business of the
    # readers of GET /api/health (a webhook pointed at an internal service would show it)
    error = f"HTTP {status} {response.reason_phrase}".rstrip()
    if status >= 500 or status in RETRY_STATUSES:
        return PostFailure(error, retry=True)
    return PostFailure(f"{error} (refused by the receiver: not sent again)", retry=False)


class Senders:
    """Posts the due deliveries, each on its own: ``SENDERS`` threads, at most one post in
    flight per receiver (so a slow receiver holds one thread, and one that answers hears its
    alerts in order), each answer recorded as it comes; ``wake`` is set when a post ends, so
    that the loop claims the next at once rather than after its interval."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: httpx.Client,
        pool: ThreadPoolExecutor,
        wake: threading.Event,
    ) -> None:
        self._db = db
        self._settings = settings
        self._client = client
        self._pool = pool
        self._wake = wake
        self._lock = threading.Lock()
        self._in_flight: dict[int, str] = {}  # delivery id -> its receiver
        # httpx's timeout bounds each phase of a post (connect, write, read, pool), not its
        # whole: no other process takes a claim back before all four could have run out
        self._stale_after_s = max(
            alert_store.CLAIM_STALE_S, 4 * settings.alert_timeout_s + ALERT_INTERVAL_S
        )

    def submit_due(self) -> int:
        """Claim what is due for the receivers with no post in flight, and post it without
        waiting; returns how many were sent off."""
        with self._lock:
            free = SENDERS - len(self._in_flight)
            busy = set(self._in_flight.values())
        if free <= 0:
            return 0
        due = alert_store.claim_due(self._db, free, busy, self._stale_after_s)
        with self._lock:
            self._in_flight.update((delivery.id, delivery.url) for delivery in due)
        for delivery in due:
            self._pool.submit(self._send, delivery)
        return len(due)

    def _send(self, delivery: AlertDelivery) -> None:
        try:
            housekeeping(
                "alert delivery", lambda: self._record(delivery, _post(self._client, delivery))
            )
        finally:
            with self._lock:
                del self._in_flight[delivery.id]
            self._wake.set()

    def _record(self, delivery: AlertDelivery, failure: PostFailure | None) -> None:
        if failure is None:
            alert_store.mark_delivered(self._db, delivery.id)
            return
        backoff = min(MAX_BACKOFF_S, 2.0 ** (delivery.attempts + 1))
        retry_at = time.time() + backoff
        give_up = retry_at > delivery.created_at + self._settings.alert_retry_for_s
        label = receiver_label(delivery.url)
        log.warning("alert %s to %s failed: %s", delivery.key, label, failure.error)
        next_attempt = retry_at if failure.retry and not give_up else None
        alert_store.mark_attempt_failed(self._db, delivery.id, failure.error, next_attempt)


class AlertLoop:
    """The background thread of one API process: scan the event log every second, and send
    what is due whenever a sender is free."""

    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        timeout = httpx.Timeout(self._settings.alert_timeout_s)
        with httpx.Client(timeout=timeout) as client, ThreadPoolExecutor(SENDERS) as pool:
            senders = Senders(self._db, self._settings, client, pool, self._wake)
            next_scan = time.monotonic() + ALERT_INTERVAL_S
            while not self._stop.is_set():
                if time.monotonic() >= next_scan:
                    housekeeping("alert scan", lambda: scan_once(self._db, self._settings))
                    next_scan = time.monotonic() + ALERT_INTERVAL_S
                housekeeping("alert delivery", senders.submit_due)
                self._wake.wait(max(0.0, next_scan - time.monotonic()))
                self._wake.clear()
