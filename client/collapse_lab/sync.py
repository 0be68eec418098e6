"""``python -m collapse_lab sync DIR... [URL]``: upload offline runs (``collapse_lab.local``)
to a Collapse Lab server, with the client package alone (numpy and httpx).

Each run directory becomes one run: registered with the Idempotency-Key (and resume key)
kept in its ``run.json``, each epoch file sent once with the protocol's ``PUT`` (the server
answers a repeated epoch from its digest), then the finish call. What the server took is
written to the directory's ``sync.json`` after every epoch, so a sync interrupted halfway
and started again continues where it stopped.

``--follow`` is one loop over every run of the given folders: each poll it lists the
folders again (run directories created meanwhile join), uploads the new epochs of every
unfinished run and sends the finish call of each run whose ``finish.json`` appeared. A run
it saw end joins again when its files change (a requeued job writing on into its
directory). A run with no new file for ``--idle-timeout`` seconds (a job that died without
its finish call) is left, with one line, for a later sync; the relay ends once no run has
been active for ``--idle-timeout`` seconds (0: it runs until interrupted). A login node
relays a compute node's runs live this way, a job array's and a requeued job's included.

A plain sync gives up on a server it cannot reach (or that keeps answering 5xx) after about
a minute of retries, and then
syncs no further directory (one line says how many were left for the next sync).

Bad input gets one line each and the rest is synced: a path that does not exist, a
directory that is not a run (a folder's sub-directory with epoch files but no ``run.json``
included), an epoch file that is truncated or corrupt (not uploaded,
reported to the server as dropped), an epoch the server already holds with other data (the
stored one is kept; an epoch file changed after its upload is sent again for the server to
judge). A refused epoch is kept in ``sync.json`` with its file's digest: every
later sync names it again, and sends it again once the file has changed (repaired, or
replaced by the right copy). Exit status 0 when everything was synced, 1 when something was
reported (an epoch still refused included), 2 for a usage error (a URL that is not one,
``localhost:8000`` without its scheme included, a token that cannot go in an HTTP header,
a negative or non-finite number of seconds).
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from . import local, wire
from .monitor import (
    MAX_BACKOFF_S,
    RETRYABLE_STATUSES,
    _auth_refusal,
    _client_version,
    _no_answer,
    _response_detail,
    _retry_after,
    _token_problem,
    _url_problem,
    drop_refused_fields,
)

ATTEMPTS = 8  # per request, backing off 0.5 s doubling to 10 s: about a minute
# --follow gives up on a run after this long without a new file: longer than an epoch of
# most trainings; a job requeued after a longer wait is picked up by the next sync
DEFAULT_IDLE_TIMEOUT_S = 3600.0
DEFAULT_POLL_S = 1.0
# host:port[/path]: a server's address without its scheme, taken for the URL (a usage error)
# when no such path exists, rather than for a missing directory synced to $COLLAPSE_LAB_URL
_BARE_ADDRESS = re.compile(r"[\w.-]+:\d+(/.*)?")


class SyncAborted(Exception):
    """This directory cannot go on now (the text says why); the others still sync."""


class ServerUnreachable(SyncAborted):
    """The server did not answer through every retry: no other directory is tried."""


class TokenRefused(Exception):
    """401/403: no directory can sync with this token."""


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal; on a log file
    only the final line), so the client needs no progress library."""

    def __init__(self, label: str, stream: TextIO | None = None) -> None:
        self.label, self.stream = label, stream or sys.stderr  # sys.stderr now, not at import
        self.tty = self.stream.isatty()
        self.done = self.total = self.refused = 0
        self.shown = False

    def update(self, done: int, total: int, refused: int) -> None:
        """``done`` of ``total`` epochs taken by the server, ``refused`` not taken."""
        self.done, self.total, self.refused = done, total, refused
        if self.tty:
            self._draw("\r")

    def _draw(self, prefix: str, end: str = "") -> None:
        width = 30
        filled = width * self.done // self.total if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        refused = f", {self.refused} refused" if self.refused else ""
        line = f"{self.label} [{bar}] {self.done}/{self.total} epochs{refused}"
        self.stream.write(f"{prefix}{line}{end}")
        self.stream.flush()
        self.shown = True

    def say(self, line: str) -> None:
        """A line above the bar."""
        if self.tty and self.shown:
            self.stream.write("\r\033[K")
        self.stream.write(line + "\n")
        if self.tty and self.shown:
            self._draw("")
        self.stream.flush()

    def close(self) -> None:
        self._draw("\r" if self.tty else "", "\n")


@dataclass
class Refusal:
    """An epoch the sync did not get taken, and the file it was when that happened."""

    reason: str
    digest: str | None  # the epoch file's SHA-256 then; None: unknown, so tried again
    held: bool = False  # the run holds this epoch already, with other data (not dropped)


@dataclass
class SentFile:
    """An epoch file the server took, as it was then: a file changed since is sent again
    (the server answers the same data as a duplicate, other data as a conflict)."""

    stamp: tuple[int, int]  # (modification time in ns, size): unchanged means not re-read
    digest: str  # its SHA-256


@dataclass
class ServerState:
    """What one server already took from a run directory (its ``sync.json`` entry)."""

    run_id: str | None = None
    url: str | None = None
    uploaded: set[int] = field(default_factory=set)
    # the files of ``uploaded`` as they were sent (absent for those a sync before it sent)
    sent: dict[int, SentFile] = field(default_factory=dict)
    refused: dict[int, Refusal] = field(default_factory=dict)  # sent again once changed
    finished: str | None = None  # the digest of the finish.json that was sent
    # a resumed monitor uploaded this directory and went on online (its finish.json, which
    # no longer ended the run, removed): nothing is left for a sync unless it changes
    continued_online: bool = False


def _epochs(n: int) -> str:
    return f"{n} epoch" if n == 1 else f"{n} epochs"


class RunSync:
    """Sync one run directory to one server, one :meth:`step` at a time."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        run_dir: Path,
        progress: Progress,
        patient: bool = False,
    ) -> None:
        self.http, self.base_url, self.run_dir, self.progress = http, base_url, run_dir, progress
        self.patient = patient  # retry an unreachable server without end (--follow)
        self.meta = local.read_meta(run_dir)
        self.state = self._load_state()
        self.problems = 0
        self.sent = self.already = 0
        self.accepts: frozenset[str] = frozenset(wire.ARRAY_NAMES)  # the server's, registered
        self.registered = False  # by this sync (registration reopens a finished resumed run)
        self.server_last_epoch: int | None = None  # the run's last epoch when registered
        self.reopened_finish: dict[str, Any] | None = None  # the finish our registration undid
        self.told: set[int] = set()  # refused epochs this sync has named already
        self.said_retrying = False  # that the server is being tried again, once
        self.files: object = None  # what the directory held at the last step
        self.changed_at = time.monotonic()  # when that last changed (--idle-timeout)
        self.marks = _marks(run_dir)  # its stats when the last step began (a relay's rejoin)

    # ------------------------------------------------------------------ sync.json

    def _load_state(self) -> ServerState:
        try:
            servers = json.loads((self.run_dir / local.SYNC_FILE).read_text())["servers"]
            entry = servers[self.base_url]
            refused = entry.get("refused") or {}
            if isinstance(refused, list):  # written before refusals kept their file's digest
                refused = {epoch: {} for epoch in refused}
            return ServerState(
                run_id=entry.get("run_id"),
                url=entry.get("url"),
                uploaded=set(entry.get("uploaded", [])),
                sent={
                    int(epoch): SentFile((int(f["mtime_ns"]), int(f["size"])), str(f["digest"]))
                    for epoch, f in (entry.get("sent") or {}).items()
                },
                refused={
                    int(epoch): Refusal(
                        str(r.get("reason", "refused")), r.get("digest"), bool(r.get("held"))
                    )
                    for epoch, r in refused.items()
                },
                finished=entry.get("finished"),
                continued_online=bool(entry.get("continued_online")),
            )
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return ServerState()

    def save_state(self) -> None:
        path = self.run_dir / local.SYNC_FILE
        try:
            servers = json.loads(path.read_text())["servers"]
        except (OSError, ValueError, KeyError, TypeError):
            servers = {}
        if not isinstance(servers, dict):  # a sync.json edited by hand: rewritten whole
            servers = {}
        servers[self.base_url] = {
            "run_id": self.state.run_id,
            "url": self.state.url,
            "uploaded": sorted(self.state.uploaded),
            "sent": {
                str(epoch): {"mtime_ns": f.stamp[0], "size": f.stamp[1], "digest": f.digest}
                for epoch, f in sorted(self.state.sent.items())
            },
            "refused": {
                str(epoch): {
                    "reason": refusal.reason,
                    "digest": refusal.digest,
                    "held": refusal.held,
                }
                for epoch, refusal in sorted(self.state.refused.items())
            },
            "finished": self.state.finished,
            "continued_online": self.state.continued_online,
        }
        self._write(path, {"servers": servers})

    def _check_writable(self) -> None:
        """Write and remove a probe beside ``sync.json``: a directory the sync cannot keep
        its progress in is said before registering, which would leave an empty run on the
        server (``sync.json`` itself still appears only with a run id)."""
        probe = self.run_dir / f"{local.SYNC_FILE}.probe"
        self._write(probe, {}, shown=self.run_dir / local.SYNC_FILE)
        probe.unlink(missing_ok=True)

    @staticmethod
    def _write(path: Path, value: dict[str, Any], shown: Path | None = None) -> None:
        try:
            local.write_json(path, value)
        except OSError as error:  # a full disk, a read-only directory
            fix = (
                "free some room"
                if error.errno in (errno.ENOSPC, errno.EDQUOT)
                else "make the directory writable (the sync keeps its progress there)"
            )
            raise SyncAborted(
                f"cannot write {shown or path} ({error.strerror or error}): {fix} and run the "
                "sync again (the server keeps the epochs it took)"
            ) from None

    # ------------------------------------------------------------------ requests

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried over network errors and 5xx; SyncAborted after ATTEMPTS,
        unless ``patient`` (``--follow``: a relay outlives a server restart, as a
        monitor does), which says so once and keeps trying."""
        delay, problem, attempt = 0.5, "", 0
        while self.patient or attempt < ATTEMPTS:
            attempt += 1
            if attempt == 2 and not self.patient and not self.said_retrying:
                self.said_retrying = True  # a minute of retries, once: not in silence
                self.progress.say(
                    f"{self.run_dir}: {_no_answer(self.base_url, problem)}; trying again "
                    f"for about a minute"
                )
            if attempt == ATTEMPTS + 1:
                self.progress.say(
                    f"{self.run_dir}: {_no_answer(self.base_url, problem)}; --follow keeps trying"
                )
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                problem, wait = f"{type(error).__name__}: {error}", None
            else:
                if response.status_code in (401, 403):
                    raise TokenRefused(
                        f"{_auth_refusal(self.base_url, response)}; "
                        "pass --token or set COLLAPSE_LAB_TOKEN"
                    )
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                problem, wait = f"HTTP {response.status_code}", _retry_after(response)
            time.sleep(wait if wait is not None else delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        raise ServerUnreachable(
            f"{_no_answer(self.base_url, problem)}; run the sync again to continue where it stopped"
        )

    def register(self) -> None:
        registration = dict(self.meta["registration"])
        headers = {"Idempotency-Key": str(self.meta["idempotency_key"])}
        while True:
            response = self._call("POST", "/api/external-runs", json=registration, headers=headers)
            refused = drop_refused_fields(registration, response)
            if not refused:
                break
            why = _response_detail(response)[0][:300]
            self.report(  # as the online monitor does: the run is synced without them
                f"the server refuses {', '.join(refused)} (an older server, or a value it "
                f"does not take: {why}): the run is registered without them"
            )
        detail, _ = _response_detail(response)
        if not response.is_success:
            hint = (  # a wrong path or port answers 404 or 405, as the Monitor says too
                "; is this the address of a Collapse Lab server with external runs?"
                if response.status_code in (404, 405)
                else ""
            )
            raise SyncAborted(
                f"the server refused the run (HTTP {response.status_code}: {detail}){hint}"
            )
        payload = _json_object(response)
        run_id = payload.get("id")
        if not isinstance(run_id, str | int) or isinstance(run_id, bool):
            raise SyncAborted(
                f"{self.base_url} answered the registration without a run id (HTTP "
                f"{response.status_code}: {detail}); is it a Collapse Lab server's address?"
            )
        run_id = str(run_id)
        accepts = payload.get("accepts")  # absent: a server older than the method internals
        self.accepts = frozenset(accepts if isinstance(accepts, list) else wire.BASE_ARRAYS)
        if run_id != self.state.run_id:  # a first sync, or the server lost the run
            self.state = ServerState(run_id=run_id)
        page = str(payload.get("url") or f"/runs/{run_id}")
        self.state.url = page if page.startswith("http") else self.base_url + page
        # a resume key reopens a run its finish call had closed: that call is sent again
        self.state.finished = None
        last = payload.get("last_epoch")
        self.server_last_epoch = last if isinstance(last, int) else None
        undone = payload.get("reopened_finish")  # absent: a server before it (reopens alike)
        self.reopened_finish = undone if isinstance(undone, dict) else None
        self.registered = True
        self.save_state()

    # ------------------------------------------------------------------ epochs

    def report(self, line: str) -> None:
        self.problems += 1
        self.progress.say(f"{self.run_dir}: {line}")

    def _refuse(
        self, epoch: int, digest: str | None, reason: str, line: str, held: bool = False
    ) -> None:
        previous = self.state.refused.get(epoch)
        if epoch not in self.told or previous is None or previous.digest != digest:
            self.report(line)  # once per sync, unless the file changed and is refused again
        self.told.add(epoch)
        self.state.refused[epoch] = Refusal(reason, digest, held)
        self.save_state()

    def upload(self, epoch: int, path: Path) -> None:
        try:
            stamp = _stamp(path)
            body = path.read_bytes()
        except OSError as error:
            self._refuse(epoch, None, f"unreadable ({error})", f"{path.name}: unreadable ({error})")
            return
        digest = hashlib.sha256(body).hexdigest()
        try:
            message = wire.decode_epoch(body)
            if message.epoch != epoch:
                raise wire.MessageError(f"it holds epoch {message.epoch}")
        except wire.MessageError as error:
            reason = f"{path.name} truncated or corrupt ({error})"
            line = f"{path.name}: truncated or corrupt ({error}); not uploaded"
            self._refuse(epoch, digest, reason, line)
            return
        if unread := set(wire.array_names(body)) - self.accepts:
            body = wire.without_arrays(body, unread)  # an older server refuses unknown arrays
        url = f"/api/external-runs/{self.state.run_id}/epochs/{epoch}"
        headers = {"Content-Type": wire.CONTENT_TYPE}
        response = self._call("PUT", url, content=body, headers=headers)
        detail, code = _response_detail(response)
        if (
            response.status_code == 409
            and code == "run_closed"
            and self.meta["registration"].get("resume_key")
        ):
            self.register()  # the directory was continued after a sync finished the run
            response = self._call("PUT", url, content=body, headers=headers)
            detail, code = _response_detail(response)
        if response.is_success:
            self.state.uploaded.add(epoch)
            self.state.sent[epoch] = SentFile(stamp, digest)
            self.state.refused.pop(epoch, None)
            self.state.continued_online = False
            if _json_object(response).get("status") == "duplicate":
                self.already += 1
            else:
                self.sent += 1
        elif response.status_code == 409 and code == "run_closed":
            raise SyncAborted(  # the server's text speaks to a monitor: say it for a sync
                f"the server's run {self.state.run_id} is finished and this directory has no "
                f"resume key to reopen it, so epoch {epoch} cannot be added to it"
            )
        else:  # epoch_conflict, 413, 422: this epoch only
            reason = f"refused by the server (HTTP {response.status_code}: {detail})"
            held = code == "epoch_conflict"
            self._refuse(epoch, digest, reason, f"epoch {epoch} {reason}", held)
            return
        self.save_state()

    def finish(self, finish: dict[str, Any], digest: str | None) -> None:
        """Send a finish call; ``digest``: that of this directory's ``finish.json`` it came
        from (None: the finish our registration undid, sent back)."""
        body = dict(finish)
        # a directory written by a client that sent its texts as they came
        for text, limit in (("error", wire.MAX_ERROR), ("stop_reason", wire.MAX_STOP_REASON)):
            if isinstance(body.get(text), str):
                body[text] = wire.storable_text(body[text], limit)
        refused = {epoch for epoch, refusal in self.state.refused.items() if not refusal.held}
        dropped = set(body.get("epochs_dropped") or []) | refused
        body["epochs_dropped"] = sorted(dropped)
        path = f"/api/external-runs/{self.state.run_id}/finish"
        response = self._call("POST", path, json=body)
        if response.status_code == 422 and "stop_reason" in body:  # an older server
            body.pop("stopped_at_epoch", None), body.pop("stop_reason", None)
            response = self._call("POST", path, json=body)
        if not response.is_success:
            detail, _ = _response_detail(response)
            raise SyncAborted(
                f"the server refused the finish call (HTTP {response.status_code}: {detail})"
            )
        self.state.finished = digest
        self.save_state()

    def _went_on_elsewhere(self, epochs: dict[int, Path]) -> bool:
        """Whether the run, registered by its resume key, holds epochs past this directory's
        (a requeued try of the job logged them online): the directory's finish is stale."""
        last_here = max(epochs, default=-1)
        return self.server_last_epoch is not None and self.server_last_epoch > last_here

    def _still_refused(self, epoch: int, path: Path) -> bool:
        """Refused before, and its file unchanged since: named once per sync, not re-sent."""
        refusal = self.state.refused.get(epoch)
        if refusal is None or refusal.digest is None or refusal.digest != _digest(path):
            return False
        if epoch not in self.told:
            self.told.add(epoch)
            self.report(
                f"epoch {epoch} still refused, its file unchanged: {refusal.reason}; fix or "
                f"remove {path.name} and sync again"
            )
        return True

    def _unsent(self, epoch: int, path: Path, stamp: tuple[int, int] | None) -> bool:
        """Not taken by the server yet, or taken but its file (``stamp``: as this step
        listed it) changed since (edited, or replaced by a restarted job's): sent again, for
        the server to judge."""
        if epoch not in self.state.uploaded:
            return True
        sent = self.state.sent.get(epoch)
        if sent is None:  # sent by a sync that did not keep its files' stamps
            return False
        if stamp is None or stamp == sent.stamp:  # vanished since the listing, or unchanged
            return False
        digest = _digest(path)
        if digest == sent.digest or digest is None:  # touched, or put back: the same bytes
            if digest is not None:
                self.state.sent[epoch] = SentFile(stamp, digest)
                if self.state.refused.pop(epoch, None) is not None:
                    self.save_state()  # the server holds this file's data: nothing refused
            return False
        return True

    def _todo(
        self, epochs: dict[int, Path], stamps: dict[int, tuple[int, int] | None]
    ) -> list[int]:
        return [
            epoch
            for epoch, path in epochs.items()
            if self._unsent(epoch, path, stamps[epoch]) and not self._still_refused(epoch, path)
        ]

    def _show(self, epochs: dict[int, Path]) -> None:
        done = len(self.state.uploaded & set(epochs))
        self.progress.update(done, len(epochs), len(set(self.state.refused) & set(epochs)))

    def step(self) -> bool:
        """Upload the epoch files the server has not taken (a refused one again once its file
        changed), then the finish call once ``finish.json`` is there. True when the run is
        finished on the server."""
        self.marks = _marks(self.run_dir)
        finish_digest = _digest(self.run_dir / local.FINISH_FILE)  # before listing epochs
        epochs = local.stored_epochs(self.run_dir)
        stamps = {epoch: _stamp_if_there(path) for epoch, path in epochs.items()}  # one stat each
        files = (finish_digest, stamps)
        if files != self.files:
            self.files, self.changed_at = files, time.monotonic()
        todo = self._todo(epochs, stamps)
        unsent_finish = finish_digest is not None and finish_digest != self.state.finished
        if not self.registered and (todo or self.state.run_id is None or unsent_finish):
            if self.state.run_id is None:
                self._check_writable()
            # registered only with something to send: a resume key reopens a finished run
            self.register()
            todo = self._todo(epochs, stamps)  # the server may have lost the run: all again
        self._show(epochs)
        for epoch in todo:
            self.upload(epoch, epochs[epoch])
            self._show(epochs)
        if finish_digest and finish_digest != self.state.finished:
            finish = local.read_finish(self.run_dir)
            if finish is not None and self._went_on_elsewhere(epochs):
                self.progress.say(
                    f"{self.run_dir}: the server's run holds epochs up to "
                    f"{self.server_last_epoch}, past this directory's last: the job went on "
                    f"elsewhere (its resume key), so this directory's {local.FINISH_FILE} does "
                    "not end the run"
                    + ("; it is closed again as it was" if self.reopened_finish else "")
                )
                if self.reopened_finish is not None:  # our registration reopened it
                    self.finish(self.reopened_finish, finish_digest)
                else:
                    self.state.finished = finish_digest
                    self.save_state()
            elif finish is not None:
                self.finish(finish, finish_digest)
        elif self.reopened_finish is not None and self._went_on_elsewhere(epochs):
            # a try cut off before its finish (SIGKILL, preemption): the job went on and
            # ended elsewhere, and our registration reopened that ended run; it ends again as
            # it was, or it would stay running for good
            self.progress.say(
                f"{self.run_dir}: the server's run holds epochs up to {self.server_last_epoch}, "
                "past this directory's last, and had finished: the job went on elsewhere "
                "(its resume key), so the run is closed again as it was"
            )
            self.finish(self.reopened_finish, None)
            self.reopened_finish = None
        if todo:  # uploading takes time (a backlog, a server restart): it is not idleness
            self.changed_at = time.monotonic()
        return self._done(finish_digest)

    def _done(self, finish_digest: str | None) -> bool:
        """Whether nothing is left: the directory's finish call sent, or the run continued
        online by a resumed monitor (:attr:`ServerState.continued_online`)."""
        if finish_digest is None:
            return self.state.continued_online
        return finish_digest == self.state.finished


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The reply's JSON object; empty when it is none (a proxy's HTML page)."""
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _marks(run_dir: Path) -> tuple[tuple[int, int, int] | None, ...]:
    """What changes when a run directory gets an epoch, a finish or a new ``run.json``
    (``sync.json``, which the sync writes, left out): their files' and folder's stats."""
    marks: list[tuple[int, int, int] | None] = []
    for path in (run_dir / local.RUN_FILE, run_dir / local.FINISH_FILE, run_dir / local.EPOCHS_DIR):
        try:
            stat = path.stat()
        except OSError:
            marks.append(None)
        else:
            marks.append((stat.st_mtime_ns, stat.st_ino, stat.st_size))
    return tuple(marks)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _stamp(path: Path) -> tuple[int, int]:
    """(modification time in ns, size) of a file; OSError when it cannot be read."""
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


def _stamp_if_there(path: Path) -> tuple[int, int] | None:
    """:func:`_stamp`, or None for a file gone since the listing (or unreadable)."""
    try:
        return _stamp(path)
    except OSError:
        return None


class Relay:
    """The runs found in ``paths`` synced once, or (``follow``) followed in one loop until
    no run has been active for ``idle_timeout_s``; every pass lists the folders again, and a
    run that ended joins again once its files change."""

    def __init__(
        self,
        http: httpx.Client,
        base_url: str,
        paths: list[Path],
        follow: bool,
        idle_timeout_s: float,
    ) -> None:
        self.http, self.base_url, self.follow = http, base_url, follow
        self.idle_timeout_s = idle_timeout_s
        self.active: dict[Path, RunSync] = {}
        self.ended: dict[Path, object] = {}  # each ended run's _marks when last looked at
        self.problems = 0
        self.unreachable = False  # a plain sync stops at the first directory that found it so
        self.watched: list[Path] = []
        self.fruitless: list[Path] = []  # watched folders that held no run so far
        self.orphans: set[Path] = set()  # epoch files without run.json, named at the end
        for path in paths:
            if not path.exists():  # named now, not waited for (a typo rarely appears later)
                print(f"{path}: no such directory", file=sys.stderr)
                self.problems += 1
            elif path.is_dir():
                self.watched.append(path)
                self.fruitless.append(path)
            else:
                self._not_a_run(path)

    def _not_a_run(self, path: Path) -> None:
        if path.name == local.RUN_FILE and path.is_file():
            problem = f"a run's {local.RUN_FILE}: give its directory, {path.parent}"
        elif path.is_file():
            problem = "a file, not a Collapse Lab run directory"
        else:  # a folder of runs (COLLAPSE_LAB_DIR) is fine too: this one holds none
            problem = (
                f"not a Collapse Lab run directory (no {local.RUN_FILE}), nor a folder of them"
            )
        print(f"{path}: {problem}", file=sys.stderr)
        self.problems += 1

    def _scan(self) -> None:
        for path in self.watched:
            runs, orphans = local.find_runs(path), local.find_orphans(path)
            self.orphans.update(orphans)
            if runs or orphans:
                self.fruitless = [p for p in self.fruitless if p != path]
            for run_dir in runs:
                if run_dir in self.active:
                    continue
                if run_dir in self.ended and self.ended[run_dir] == _marks(run_dir):
                    continue  # ended, and unchanged since
                self.ended.pop(run_dir, None)
                try:
                    self.active[run_dir] = RunSync(
                        self.http, self.base_url, run_dir, Progress(run_dir.name), self.follow
                    )
                except local.NotARunError as error:
                    print(str(error), file=sys.stderr)
                    self.problems += 1
                    self.ended[run_dir] = _marks(run_dir)

    def _end(self, run_dir: Path, syncer: RunSync, summary: bool = True) -> None:
        del self.active[run_dir]
        self.ended[run_dir] = syncer.marks  # a change since its last step brings it back
        self.problems += syncer.problems
        if not summary:
            return
        if syncer.progress.shown or not syncer.progress.tty:
            syncer.progress.close()
        synced = (
            "finished"
            if syncer.state.finished
            else "continued online by a resumed monitor"
            if syncer.state.continued_online
            else "still running"
        )
        refused = len(syncer.told & set(syncer.state.refused))
        if syncer.sent or syncer.already or refused:
            counts = f"{_epochs(syncer.sent)} uploaded, {syncer.already} already there, " + (
                f"{refused} refused, " if refused else ""
            )
        else:  # an earlier sync took them all
            counts = f"nothing new ({_epochs(len(syncer.state.uploaded))} synced before), "
        print(f"{run_dir} -> {syncer.state.url}: {counts}run {synced}", flush=True)

    def _step(self, run_dir: Path, syncer: RunSync) -> None:
        try:
            finished = syncer.step()
        except (local.NotARunError, SyncAborted) as error:  # this directory only
            named = isinstance(error, local.NotARunError)  # its text names the file
            syncer.progress.say(str(error) if named else f"{run_dir}: {error}")
            self.problems += 1
            self.unreachable = isinstance(error, ServerUnreachable)
            self._end(run_dir, syncer, summary=False)
            return
        idle = time.monotonic() - syncer.changed_at
        if finished or not self.follow:
            self._end(run_dir, syncer)
        elif self.idle_timeout_s and idle >= self.idle_timeout_s:
            syncer.report(
                f"no new epoch and no {local.FINISH_FILE} for {idle:.0f} s (--idle-timeout): "
                "left running on the server; sync again to continue it"
            )
            self._end(run_dir, syncer)

    def run(self, poll_s: float) -> int:
        """Sync until done; the exit status (0 all synced, 1 something reported)."""
        busy_at = time.monotonic()  # when a run was last active (--follow's idle timeout)
        while True:
            self._scan()
            stepped = bool(self.active)
            for run_dir, syncer in list(self.active.items()):
                if self.unreachable:
                    break
                self._step(run_dir, syncer)
            if stepped:  # measured after the pass: a long upload is not idleness
                busy_at = time.monotonic()
            quiet = time.monotonic() - busy_at
            if (
                not self.follow
                or not self.watched
                or (not self.active and self.idle_timeout_s and quiet >= self.idle_timeout_s)
            ):
                break
            time.sleep(poll_s)
        if self.unreachable and self.active:
            print(
                f"{len(self.active)} more run directories not synced: {self.base_url} did not "
                "answer through the retries (said above); run the sync again once it is back",
                file=sys.stderr,
            )
            self.problems += 1
        for path in sorted(p for p in self.orphans if not (p / local.RUN_FILE).exists()):
            print(
                f"{path}: not a Collapse Lab run directory (an {local.EPOCHS_DIR} folder but no "
                f"{local.RUN_FILE}: copied without it?); not synced",
                file=sys.stderr,
            )
            self.problems += 1
        for path in self.fruitless:
            self._not_a_run(path)
        return 1 if self.problems else 0


def sync_paths(
    paths: list[Path],
    base_url: str,
    token: str | None,
    follow: bool = False,
    poll_s: float = DEFAULT_POLL_S,
    idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
) -> int:
    """Sync every run directory in ``paths`` (each a run directory or a folder of them);
    the exit status (0 all synced, 1 something reported)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as http:
        try:
            return Relay(http, base_url, paths, follow, idle_timeout_s).run(poll_s)
        except TokenRefused as error:
            print(f"collapse_lab sync: {error}", file=sys.stderr)
            return 1


def _seconds(text: str, above_zero: bool = False) -> float:
    """An argparse type: a finite number of seconds, at least 0 (above 0 when asked)."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0 or (above_zero and value == 0):
        bound = "above 0" if above_zero else "0 or more"
        raise argparse.ArgumentTypeError(f"must be a number of seconds, {bound}, not {text!r}")
    return value


def main(argv: list[str] | None = None, prog: str = "python -m collapse_lab") -> int:
    """The command line (``prog``: how the user called it, as its messages name it)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Collapse Lab client tools (the library itself is collapse_lab.Monitor).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_client_version()}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    sync = commands.add_parser(
        "sync",
        help="upload offline runs (Monitor(offline=True)) to a server",
        usage="%(prog)s [options] DIR [DIR ...] [URL]",
        description="Upload run directories written offline. Each becomes one run, each "
        "epoch stored once; an interrupted sync continues where it stopped.",
    )
    sync.add_argument(
        "paths",
        nargs="+",
        metavar="DIR [URL]",
        help="run directories, or folders of them (COLLAPSE_LAB_DIR); then the server's "
        "address (default $COLLAPSE_LAB_URL)",
    )
    sync.add_argument("--token", help="the server's API_TOKEN (default $COLLAPSE_LAB_TOKEN)")
    sync.add_argument(
        "--follow",
        action="store_true",
        help="keep uploading new epochs as they are written, of every run in the folders "
        "(new ones, and ended ones whose files change, included), until no run has been "
        "active for --idle-timeout seconds",
    )
    sync.add_argument(
        "--poll",
        type=lambda text: _seconds(text, above_zero=True),
        default=DEFAULT_POLL_S,
        metavar="SECONDS",
        help=f"--follow's rescan interval (default {DEFAULT_POLL_S:g})",
    )
    sync.add_argument(
        "--idle-timeout",
        type=_seconds,
        default=DEFAULT_IDLE_TIMEOUT_S,
        metavar="SECONDS",
        help="--follow leaves a run with no new file for this long (a job that died before "
        "its finish call), and ends once no run has been active for this long (default "
        f"{DEFAULT_IDLE_TIMEOUT_S:.0f}; 0: follow until interrupted)",
    )
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "sync":
        parser.parse_args(argv)  # help, or the usage error that names the commands: exits
    # options anywhere among the paths (``sync DIR --follow URL``): the subcommand's own parser
    args = sync.parse_intermixed_args(argv[1:])
    paths = list(args.paths)
    last = paths[-1]
    address = "://" in last or bool(_BARE_ADDRESS.fullmatch(last))
    url = paths.pop() if address and not Path(last).exists() else None
    url = url or os.environ.get("COLLAPSE_LAB_URL")
    if not url and not Path(last).exists():
        sync.error(
            f"{last!r} is neither a directory nor a server's URL (http://host:port): give "
            "the server's URL after the directories, or set COLLAPSE_LAB_URL"
        )
    if not url:
        sync.error("give the server's URL after the directories, or set COLLAPSE_LAB_URL")
    if problem := _url_problem(url):
        sync.error(f"the server's URL: {problem}")
    if not paths:
        sync.error("give at least one run directory")
    if addresses := [path for path in paths if "://" in path and not Path(path).exists()]:
        sync.error(f"{addresses[0]!r} is a URL among the directories: give one server, last")
    token = args.token or os.environ.get("COLLAPSE_LAB_TOKEN")
    if token and (problem := _token_problem(token)):
        sync.error(f"{problem}: check --token or $COLLAPSE_LAB_TOKEN")
    try:
        return sync_paths(
            [Path(p) for p in paths],
            url.rstrip("/"),
            token,
            args.follow,
            args.poll,
            args.idle_timeout,
        )
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return 1
