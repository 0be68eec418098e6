"""``python -m collapse_lab sync DIR... [URL]``: upload offline runs (``collapse_lab.local``)
to a Collapse Lab server, with the client package alone (numpy and httpx).

Each run directory becomes one run: registered with the Idempotency-Key (and resume key)
kept in its ``run.json``, each epoch file sent once with the protocol's ``PUT`` (the server
answers a repeated epoch from its digest), then the finish call. What the server took is
written to the directory's ``sync.json`` after every epoch, so a sync interrupted halfway
and started again continues where it stopped. ``--follow`` keeps uploading the epochs of a
run still being written until its ``finish.json`` appears: a login node relays a compute
node's run live.

Bad input gets one line each and the rest is synced: a directory that is not a run, an
epoch file that is truncated or corrupt (not uploaded, reported to the server as dropped),
an epoch the server already holds with other data (the stored one is kept). Exit status 0
when everything was synced, 1 when something was reported, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

from . import local, wire
from .monitor import MAX_BACKOFF_S, RETRYABLE_STATUSES, _response_detail, _retry_after

ATTEMPTS = 8  # per request, backing off 0.5 s doubling to 10 s: about a minute


class SyncAborted(Exception):
    """This directory cannot go on now (the text says why); the others still sync."""


class TokenRefused(Exception):
    """401/403: no directory can sync with this token."""


class Progress:
    """A one-line progress bar on stderr (redrawn in place on a terminal; on a log file
    only the final line), so the client needs no progress library."""

    def __init__(self, label: str, stream: TextIO = sys.stderr) -> None:
        self.label, self.stream = label, stream
        self.tty = stream.isatty()
        self.done = self.total = 0
        self.shown = False

    def update(self, done: int, total: int) -> None:
        self.done, self.total = done, total
        if self.tty:
            self._draw("\r")

    def _draw(self, prefix: str, end: str = "") -> None:
        width = 30
        filled = width * self.done // self.total if self.total else width
        bar = "#" * filled + "-" * (width - filled)
        self.stream.write(f"{prefix}{self.label} [{bar}] {self.done}/{self.total} epochs{end}")
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
class ServerState:
    """What one server already took from a run directory (its ``sync.json`` entry)."""

    run_id: str | None = None
    url: str | None = None
    uploaded: set[int] = field(default_factory=set)
    refused: set[int] = field(default_factory=set)  # conflicts and bad files: not re-sent
    finished: str | None = None  # the digest of the finish.json that was sent


class RunSync:
    """Sync one run directory to one server."""

    def __init__(self, http: httpx.Client, base_url: str, run_dir: Path, progress: Progress):
        self.http, self.base_url, self.run_dir, self.progress = http, base_url, run_dir, progress
        self.meta = local.read_meta(run_dir)
        self.state = self._load_state()
        self.problems = 0
        self.sent = self.already = 0
        self.accepts: frozenset[str] = frozenset(wire.ARRAY_NAMES)  # the server's, registered

    # ------------------------------------------------------------------ sync.json

    def _load_state(self) -> ServerState:
        try:
            servers = json.loads((self.run_dir / local.SYNC_FILE).read_text())["servers"]
            entry = servers[self.base_url]
        except (OSError, ValueError, KeyError, TypeError):
            return ServerState()
        return ServerState(
            run_id=entry.get("run_id"),
            url=entry.get("url"),
            uploaded=set(entry.get("uploaded", [])),
            refused=set(entry.get("refused", [])),
            finished=entry.get("finished"),
        )

    def _save_state(self) -> None:
        path = self.run_dir / local.SYNC_FILE
        try:
            servers = json.loads(path.read_text())["servers"]
        except (OSError, ValueError, KeyError, TypeError):
            servers = {}
        servers[self.base_url] = {
            "run_id": self.state.run_id,
            "url": self.state.url,
            "uploaded": sorted(self.state.uploaded),
            "refused": sorted(self.state.refused),
            "finished": self.state.finished,
        }
        local.write_json(path, {"servers": servers})

    # ------------------------------------------------------------------ requests

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request, retried over network errors and 5xx; SyncAborted after ATTEMPTS."""
        delay, problem = 0.5, ""
        for _ in range(ATTEMPTS):
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                problem, wait = f"{type(error).__name__}: {error}", None
            else:
                if response.status_code in (401, 403):
                    detail, _ = _response_detail(response)
                    raise TokenRefused(
                        f"{self.base_url} refused the token (HTTP {response.status_code}: "
                        f"{detail}); pass --token or set COLLAPSE_LAB_TOKEN"
                    )
                if response.status_code not in RETRYABLE_STATUSES:
                    return response
                problem, wait = f"HTTP {response.status_code}", _retry_after(response)
            time.sleep(wait if wait is not None else delay)
            delay = min(delay * 2, MAX_BACKOFF_S)
        raise SyncAborted(
            f"cannot reach {self.base_url} ({problem}); run the sync again to continue where "
            "it stopped"
        )

    def register(self) -> None:
        registration = dict(self.meta["registration"])
        headers = {"Idempotency-Key": str(self.meta["idempotency_key"])}
        while True:
            response = self._call("POST", "/api/external-runs", json=registration, headers=headers)
            if (
                response.status_code == 422
                and "resume_key" in registration
                and "resume_key" in response.text
            ):
                del registration["resume_key"]  # a server older than resume keys
                continue
            break
        detail, _ = _response_detail(response)
        if not response.is_success:
            raise SyncAborted(f"the server refused the run (HTTP {response.status_code}: {detail})")
        payload = response.json()
        accepts = payload.get("accepts")  # absent: a server older than the method internals
        self.accepts = frozenset(accepts if isinstance(accepts, list) else wire.BASE_ARRAYS)
        if payload["id"] != self.state.run_id:  # a first sync, or the server lost the run
            self.state = ServerState(run_id=str(payload["id"]))
        page = str(payload.get("url") or f"/runs/{payload['id']}")
        self.state.url = page if page.startswith("http") else self.base_url + page
        self._save_state()

    # ------------------------------------------------------------------ epochs

    def _report(self, line: str) -> None:
        self.problems += 1
        self.progress.say(f"{self.run_dir}: {line}")

    def upload(self, epoch: int, path: Path) -> None:
        try:
            body = path.read_bytes()
            message = wire.decode_epoch(body)
            if message.epoch != epoch:
                raise wire.MessageError(f"it holds epoch {message.epoch}")
        except (OSError, wire.MessageError) as error:
            self._report(f"{path.name}: truncated or corrupt ({error}); not uploaded")
            self.state.refused.add(epoch)
            self._save_state()
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
            if response.json().get("status") == "duplicate":
                self.already += 1
            else:
                self.sent += 1
        elif response.status_code == 409 and code == "run_closed":
            raise SyncAborted(f"the server's run {self.state.run_id} is closed: {detail}")
        else:  # epoch_conflict, 413, 422: this epoch only
            self._report(
                f"epoch {epoch} refused by the server (HTTP {response.status_code}: {detail})"
            )
            self.state.refused.add(epoch)
        self._save_state()

    def finish(self, finish: dict[str, Any], digest: str) -> None:
        body = dict(finish)
        body["epochs_dropped"] = sorted(set(body.get("epochs_dropped") or []) | self.state.refused)
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
        self._save_state()

    def run(self, follow: bool, poll_s: float) -> None:
        finish_digest = _digest(self.run_dir / local.FINISH_FILE)
        if finish_digest and self.state.finished == finish_digest:
            self.progress.say(f"{self.run_dir}: already synced ({self.state.url})")
            return
        self.register()
        while True:
            finish_digest = _digest(self.run_dir / local.FINISH_FILE)  # before listing epochs
            epochs = local.stored_epochs(self.run_dir)
            handled = self.state.uploaded | self.state.refused
            self.progress.update(len(handled & set(epochs)), len(epochs))
            for epoch, path in epochs.items():
                if epoch not in handled:
                    self.upload(epoch, path)
                    handled = self.state.uploaded | self.state.refused
                    self.progress.update(len(handled & set(epochs)), len(epochs))
            if finish_digest:
                finish = local.read_finish(self.run_dir)
                if finish is not None:
                    self.finish(finish, finish_digest)
                return
            if not follow:
                return
            time.sleep(poll_s)


def _digest(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def sync_paths(
    paths: list[Path], base_url: str, token: str | None, follow: bool = False, poll_s: float = 1.0
) -> int:
    """Sync every run directory in ``paths`` (each a run directory or a folder of them);
    the exit status (0 all synced, 1 something reported)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    problems = 0
    runs: list[Path] = []
    for path in paths:
        found = local.find_runs(path)
        if not found:
            print(
                f"{path}: not a Collapse Lab run directory (no {local.RUN_FILE})", file=sys.stderr
            )
            problems += 1
        runs.extend(found)
    with httpx.Client(base_url=base_url, headers=headers, timeout=60.0) as http:
        for run_dir in runs:
            progress = Progress(run_dir.name)
            try:
                syncer = RunSync(http, base_url, run_dir, progress)
                syncer.run(follow, poll_s)
            except local.NotARunError as error:
                print(str(error), file=sys.stderr)
                problems += 1
                continue
            except SyncAborted as error:
                progress.say(f"{run_dir}: {error}")
                problems += 1
                continue
            except TokenRefused as error:
                print(f"collapse_lab sync: {error}", file=sys.stderr)
                return 1
            problems += syncer.problems
            if progress.shown or not progress.tty:
                progress.close()
            synced = "finished" if syncer.state.finished else "running"
            print(
                f"{run_dir} -> {syncer.state.url}: {syncer.sent} epochs uploaded, "
                f"{syncer.already} already there, run {synced}"
            )
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m collapse_lab",
        description="Collapse Lab client tools (the library itself is collapse_lab.Monitor).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser(
        "sync",
        help="upload offline runs (Monitor(offline=True)) to a server",
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
        help="keep uploading new epochs as they are written, until the run is finished",
    )
    sync.add_argument("--poll", type=float, default=1.0, help="--follow's rescan interval (s)")
    args = parser.parse_args(argv)
    paths = list(args.paths)
    url = paths.pop() if paths[-1].startswith(("http://", "https://")) else None
    url = url or os.environ.get("COLLAPSE_LAB_URL")
    if not url:
        parser.error("give the server's URL after the directories, or set COLLAPSE_LAB_URL")
    if not paths:
        parser.error("give at least one run directory")
    token = args.token or os.environ.get("COLLAPSE_LAB_TOKEN")
    try:
        return sync_paths([Path(p) for p in paths], url.rstrip("/"), token, args.follow, args.poll)
    except KeyboardInterrupt:
        print("\ninterrupted: run the same command again to continue", file=sys.stderr)
        return 1
