"""Live events: a durable log in the database, fan-out over Redis pub/sub, Server-Sent Events.

Protocol of ``GET /api/runs/{id}/events`` (``text/event-stream``)::

    retry: 2000

    id: 7
    event: epoch
    data: {"epoch": 3, "loss": -0.61, ..., "verdict": {...}}

- Durable events carry ``id:`` = the run's event sequence number (1, 2, 3... gap-free,
  assigned by the database, so they survive API restarts). Types:
  ``status`` (data ``{"status", "error", "reason", "verdict", "last_epoch", "epochs",
  "attempts", "worker_losses"}``), ``epoch`` (data = the epoch record, identical to the
  matching element of ``GET /api/runs/{id}/epochs``; the run's last epoch comes again when
  its verdict was revised because an earlier epoch arrived late: the newer record replaces
  the older), ``projection`` (data
  ``{"epoch", "count", "url"}``: fetch the points from ``url``).
- ``progress`` events are live only and carry no ``id:`` (so they never move the resume
  point): data ``{"epoch", "step", "steps", "images_per_s", "fraction"}``.
- A client that reconnects with ``Last-Event-ID: n`` (EventSource does this by itself; the
  ``last_event_id`` query parameter does the same) gets every durable event after ``n``
  exactly once, then the live ones. Comment lines (``: keep-alive``) arrive every
  ``SSE_KEEPALIVE_S`` seconds.

``GET /api/events`` streams every run's ``status``, ``epoch`` and ``progress`` events for the
run list; data is ``{"run_id", "seq", "data"}`` and ids are global event ids (without
``Last-Event-ID`` it starts with what happens next).

How it stays gap-free: writers commit the event to the database, then publish it on one
Redis channel. Each API process holds a single subscription (:class:`EventHub`) and hands
messages to the local streams. A stream subscribes *before* reading the history, skips what it
has already sent, and on a jump in sequence numbers, a Redis reconnect or a queue overflow it
re-reads the log from the database. When the subscription drops, every stream is woken at once
and polls the database every second until it is back (then they go back to push). A stream
also outlives a database restart: it keeps its connection and polls the log every second until
the database answers again (:class:`LogReader`).

The framing, the keep-alive comments, client disconnects and server shutdown are
sse-starlette's (:func:`event_response`); what is ours is which events go out and in what
order, which no library knows: the history from the log, then the live ones without gaps or
repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis
from anyio import to_thread
from sqlalchemy.exc import OperationalError
from sse_starlette import EventSourceResponse, ServerSentEvent

from backend.store.database import Database
from backend.store.eventlog import EVENT_BATCH, EventMessage, events_after, global_events_after

log = logging.getLogger(__name__)

LIST_EVENT_TYPES = ("status", "epoch")
RESYNC = object()  # queued to a stream when it may have missed messages


class Publisher:
    """Publishes committed events on Redis from a background thread, so that training never
    waits on Redis. While Redis is down messages are dropped (they are in the database; the
    streams catch up from there) and a connection is retried at most once a second."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.client = redis.Redis.from_url(
            redis_url, socket_connect_timeout=1, socket_timeout=2, retry_on_timeout=False
        )
        self.channel = channel
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(maxsize=10_000)
        self._down_until = 0.0
        self._thread = threading.Thread(target=self._run, name="event-publisher", daemon=True)
        self._thread.start()

    def publish(self, messages: list[EventMessage]) -> None:
        for message in messages:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(message.to_json())

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None:
                return
            if time.monotonic() < self._down_until:
                continue
            try:
                self.client.publish(self.channel, json.dumps(payload))
            except (redis.RedisError, OSError) as exc:
                log.warning("Redis unreachable, live event dropped (it is stored): %s", exc)
                self._down_until = time.monotonic() + 1.0

    def close(self, timeout: float = 2.0) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)
        self.client.close()


@dataclass(eq=False)
class Subscription:
    """One stream's inbox: EventMessages, or RESYNC when it must re-read the log."""

    key: str  # a run id, or "*" for every run
    queue: asyncio.Queue[Any] = field(default_factory=lambda: asyncio.Queue(maxsize=2000))

    def offer(self, item: Any) -> None:
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self._drain()
            self.queue.put_nowait(RESYNC)

    def _drain(self) -> None:
        while not self.queue.empty():
            self.queue.get_nowait()


class EventHub:
    """One Redis subscription per API process, fanned out to the local SSE streams.

    Hand-written rather than a pub/sub fan-out library (broadcaster and the like): what
    keeps the streams gap-free is telling every stream to re-read the log after a Redis
    reconnect or an overflowing inbox, which those do not offer."""

    def __init__(self, redis_url: str, channel: str) -> None:
        self.redis_url = redis_url
        self.channel = channel
        self.connected = False
        # called with each message, and with None when the channel is lost or comes back
        self.listeners: list[Callable[[EventMessage | None], None]] = []
        self._subscriptions: dict[str, set[Subscription]] = {}
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="event-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def subscribe(self, key: str) -> Subscription:
        subscription = Subscription(key)
        self._subscriptions.setdefault(key, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        members = self._subscriptions.get(subscription.key)
        if members is not None:
            members.discard(subscription)
            if not members:
                del self._subscriptions[subscription.key]

    def _broadcast_resync(self) -> None:
        for listener in self.listeners:
            listener(None)
        for members in self._subscriptions.values():
            for subscription in members:
                subscription.offer(RESYNC)

    def _dispatch(self, raw: bytes | str) -> None:
        try:
            message = EventMessage.from_json(json.loads(raw))
        except (ValueError, KeyError, TypeError):
            log.warning("ignoring malformed event message %r", raw[:200])
            return
        for listener in self.listeners:
            listener(message)
        for key in (message.run_id, "*"):
            for subscription in self._subscriptions.get(key, ()):
                subscription.offer(message)

    async def _listen(self) -> None:
        while True:
            client = aioredis.Redis.from_url(self.redis_url, socket_connect_timeout=2)
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(self.channel)
                self.connected = True
                self._broadcast_resync()
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=5.0)
                    if message is None:
                        await client.ping()
                        continue
                    if message["type"] == "message":
                        self._dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError) as exc:
                if self.connected:
                    log.warning("lost the Redis event channel: %s", exc)
            finally:
                was_connected, self.connected = self.connected, False
                if was_connected:
                    # wake every stream now: each re-reads the log and, until the channel is
                    # back, polls the database every second instead of waiting for news
                    self._broadcast_resync()
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                    await client.aclose()
            await asyncio.sleep(0.5)


RECONNECT_MS = 2000  # how long EventSource waits before reconnecting (its "retry")
DOWN_POLL_S = 1.0  # how often a stream re-reads the log while Redis or the database is down


class LogReader:
    """A stream's reads of the event log, surviving a database restart: a read that finds the
    database unreachable returns None and the stream polls every DOWN_POLL_S until it answers.
    Ending the stream instead would not do: the viewer's EventSource reconnects, gets the 500
    of a request that cannot reach the database, and gives up for good (as it does on any
    error status), so a page stopped updating after a PostgreSQL restart."""

    def __init__(self) -> None:
        self.down = False

    async def read(
        self, query: Callable[..., list[EventMessage]], *args: Any
    ) -> list[EventMessage] | None:
        try:
            batch = await to_thread.run_sync(query, *args)
        except OperationalError as exc:
            if not self.down:
                log.warning("event stream waits for the database: %s", str(exc).splitlines()[0])
            self.down = True
            return None
        self.down = False
        return batch


def sse_event(kind: str, data: Any, event_id: int | None = None) -> ServerSentEvent:
    """One SSE event; ``data`` is written as a single line of JSON."""
    return ServerSentEvent(
        json.dumps(data, separators=(",", ":")),
        event=kind,
        id=None if event_id is None else str(event_id),
    )


def event_response(
    stream: AsyncIterator[ServerSentEvent], keepalive_s: float
) -> EventSourceResponse:
    """The ``text/event-stream`` response, with a ``: keep-alive`` comment every
    ``keepalive_s`` seconds (proxies drop idle connections)."""
    return EventSourceResponse(
        stream,
        ping=keepalive_s,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers={"Cache-Control": "no-cache"},
    )


# The highest event id of a run's stream (a per-run ``seq``, an INTEGER column) and of the
# run list's stream (the global log's id); the routes' ``last_event_id`` query stops there too.
RUN_EVENT_ID_MAX = 2**31 - 1
GLOBAL_EVENT_ID_MAX = 2**62


def parse_last_event_id(header: str | None, query: int | None, highest: int) -> int:
    """The resume point: the ``Last-Event-ID`` header wins over the query parameter; junk
    counts as 0 (start from the beginning), and so does a number above ``highest`` (an id
    this stream never gave, which the database could not even compare)."""
    if header:
        try:
            value = int(header.strip())
        except ValueError:
            return 0
        return value if 0 <= value <= highest else 0
    return min(max(0, query or 0), highest)


async def run_event_stream(
    db: Database,
    hub: EventHub,
    run_id: str,
    after_seq: int,
    keepalive_s: float,
) -> AsyncIterator[ServerSentEvent]:
    """The events of one run: stored history after ``after_seq``, then live events. Every
    ``keepalive_s`` without news (DOWN_POLL_S while Redis or the database is down) it re-reads
    the log."""
    subscription = hub.subscribe(run_id)
    last = after_seq
    reader = LogReader()

    async def catch_up() -> list[ServerSentEvent]:
        nonlocal last
        events: list[ServerSentEvent] = []
        while True:
            batch = await reader.read(events_after, db, run_id, last)
            if batch is None:
                return events  # what was read so far; the rest at the next poll
            for message in batch:
                events.append(sse_event(message.type, message.data, message.seq))
                last = message.seq or last
            if len(batch) < EVENT_BATCH:
                return events

    try:
        yield ServerSentEvent(retry=RECONNECT_MS)
        for event in await catch_up():
            yield event
        while True:
            timeout = keepalive_s if hub.connected and not reader.down else DOWN_POLL_S
            try:
                item: Any = await asyncio.wait_for(subscription.queue.get(), timeout)
            except TimeoutError:
                item = RESYNC
            if item is RESYNC or (item.seq is not None and item.seq > last + 1):
                events = await catch_up()
            elif item.seq is None:
                events = [sse_event(item.type, item.data)]
            elif item.seq == last + 1:
                events = [sse_event(item.type, item.data, item.seq)]
                last = item.seq
            else:
                continue  # already sent
            for event in events:
                yield event
    finally:
        hub.unsubscribe(subscription)


async def list_event_stream(
    db: Database,
    hub: EventHub,
    after_gid: int,
    keepalive_s: float,
    allowed: Callable[[str], bool],
) -> AsyncIterator[ServerSentEvent]:
    """The events of the run list: every run's status/epoch events (id = global event id)
    and live progress, limited to the runs ``allowed`` accepts."""
    subscription = hub.subscribe("*")
    last = after_gid
    reader = LogReader()
    try:
        yield ServerSentEvent(retry=RECONNECT_MS)
        while True:
            timeout = keepalive_s if hub.connected and not reader.down else DOWN_POLL_S
            try:
                item: Any = await asyncio.wait_for(subscription.queue.get(), timeout)
            except TimeoutError:
                item = RESYNC
            if item is not RESYNC and item.gid is None:
                if allowed(item.run_id):
                    yield sse_event(item.type, {"run_id": item.run_id, "data": item.data})
                continue
            if item is not RESYNC and (item.type not in LIST_EVENT_TYPES or item.gid <= last):
                continue
            while True:
                batch = await reader.read(global_events_after, db, last, LIST_EVENT_TYPES)
                if batch is None:
                    break  # the rest at the next poll
                for message in batch:
                    last = message.gid or last
                    if allowed(message.run_id):
                        payload = {
                            "run_id": message.run_id,
                            "seq": message.seq,
                            "data": message.data,
                        }
                        yield sse_event(message.type, payload, message.gid)
                if len(batch) < EVENT_BATCH:
                    break
    finally:
        hub.unsubscribe(subscription)
