"""A short-lived cache of the hottest read responses (the run list, a run's epochs), so that
many dashboards polling them do not each cost a database query and a JSON encoding.

An entry lives at most ``ttl_s`` (1 s) and is dropped as soon as this process's event hub
hears of a change: any stored event of a run (a new run, a status, an epoch, a projection)
drops that run's entries and every run-list page, and a lost event channel drops all and turns
the cache off until it is back (nothing would tell it about changes meanwhile). Writes that
publish no event (deleting a run) call :meth:`ReadCache.invalidate` themselves. A response
computed while a change arrived is not stored (generation check), so the cache never holds
data older than the last event it heard of.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from backend.store.eventlog import EventMessage

LIST = ""  # the run_id under which run-list pages are kept


@dataclass
class _Entry:
    body: bytes
    run_id: str
    expires: float


class ReadCache:
    """``live()`` tells whether the event channel is connected (the cache is off otherwise)."""

    def __init__(
        self, live: Callable[[], bool], ttl_s: float = 1.0, max_entries: int = 512
    ) -> None:
        self.live = live
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: dict[tuple[str, ...], _Entry] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def generation(self) -> int:
        """Read before computing a response; :meth:`put` stores it only if still current."""
        return self._generation

    def get(self, key: tuple[str, ...]) -> bytes | None:
        if not self.live():
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.expires < time.monotonic():
                return None
            return entry.body

    def put(self, key: tuple[str, ...], run_id: str, body: bytes, generation: int) -> None:
        with self._lock:
            if not self.live() or generation != self._generation:
                return
            if len(self._entries) >= self.max_entries:
                self._entries.clear()
            self._entries[key] = _Entry(body, run_id, time.monotonic() + self.ttl_s)

    def invalidate(self, run_id: str | None = None) -> None:
        """Drop the run's entries and the run list (everything when ``run_id`` is None)."""
        with self._lock:
            self._generation += 1
            if run_id is None:
                self._entries.clear()
                return
            for key in [k for k, e in self._entries.items() if e.run_id in (run_id, LIST)]:
                del self._entries[key]

    def on_event(self, message: EventMessage | None) -> None:
        """The hub's listener: a message, or None when the channel was lost or came back
        (messages may have been missed). Live-only ``progress`` messages change nothing
        stored but the heartbeat's progress, which the TTL keeps at most a second old."""
        if message is None:
            self.invalidate()
        elif message.seq is not None:
            self.invalidate(message.run_id)
