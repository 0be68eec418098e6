"""``Monitor``: send a training loop's probe embeddings to Collapse Lab, one epoch at a time.

The training thread only validates and encodes (a few milliseconds for 2,048 x 128); a
background thread uploads, in order, with retries. Nothing here raises because of the
network: problems are reported once as a :class:`CollapseLabWarning` (and every event is
logged on the ``collapse_lab`` logger). Exceptions are reserved for the caller's bugs
(wrong shapes, a wrong URL or token found when the monitor is created).
"""

from __future__ import annotations

import atexit
import hashlib
import io
import json
import logging
import math
import numbers
import os
import platform
import random
import socket
import sys
import threading
import time
import uuid
import warnings
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from . import local, wire

logger = logging.getLogger("collapse_lab")
# A library's logger: its records go where the application's logging sends them, and are
# not printed by Python's last-resort handler beside the warning that says the same.
logger.addHandler(logging.NullHandler())

# Fewer probe rows than the smallest probe a built-in run takes (contract/config.py
# probe_size) get a warning: two rows of noise read as complete collapse.
SMALL_PROBE = 64
DEFAULT_MAX_PROBE_SIZE = 10_000  # the server's MAX_PROBE_SIZE default, until it says otherwise
DEFAULT_MAX_EPOCH_BYTES = 256 * 2**20  # likewise for one epoch message
DEFAULT_BUFFER_EPOCHS = 100
DEFAULT_BUFFER_BYTES = 512 * 2**20
FIRST_BACKOFF_S = 0.5
# Short enough that a server back from an outage is noticed within seconds (and finish()
# is not left waiting long), long enough that a down server sees one request per client
# every few seconds.
MAX_BACKOFF_S = 10.0
EXIT_FLUSH_TIMEOUT_S = 30.0  # what an interpreter exit without finish() waits for uploads
# Names a training loop may give its schedules (``log_epoch(schedules=...)``), sent under
# the server's names (client/PROTOCOL.md, section 8). Only in ``schedules``: there "momentum"
# is the target's EMA momentum, not an optimiser's.
SCHEDULE_ALIASES = {
    "momentum": "ema_momentum",
    "teacher_momentum": "ema_momentum",
    "momentum_teacher": "ema_momentum",
    "ema": "ema_momentum",
    "ema_decay": "ema_momentum",
    "moving_average_decay": "ema_momentum",
    "learning_rate": "lr",
    "wd": "weight_decay",
    "teacher_temp": "teacher_temperature",
    "student_temp": "student_temperature",
    "center": "center_norm",
    "sk_epsilon": "sinkhorn_epsilon",
}
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
# The sender asks the server for the verdict of the epochs it delivered (GET /api/runs/{id})
# this soon after each, backing off to the maximum while the worker has not measured them.
FIRST_VERDICT_POLL_S = 0.05
THREAD_EXIT_S = 0.5  # what finish() gives the sender thread to stop, past its timeout
FINISH_QUIET_S = 2.0  # finish() says what it waits for once a wait passes this
MAX_VERDICT_POLL_S = 2.0
FINAL_VERDICT_WAIT_S = 10.0  # what finish() waits for the last epoch's verdict, at most
COMPLETE_COLLAPSE = "complete_collapse"
MODES = ("online", "offline", "auto")
# How far a row of float16 or bfloat16 probabilities may sum from 1: bfloat16 keeps 8
# significant bits, so a softmax computed in it sums to 1 within about 4e-3. Such rows are
# renormalised in float32 before they are sent (the server checks PROBABILITY_SUM_ATOL).
LOW_PRECISION_SUM_ATOL = 1e-2
INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)


# Any of these scalars (or both temperatures) lets the server tell a DINO-style collapse
# from a teacher that is the student itself (workers/engine/cause.py on the server).
_TEACHER_CONTEXT = frozenset({"ema_momentum", "target_param_distance", "center_norm"})


def _tells_teacher_apart(scalars: Mapping[str, Any]) -> bool:
    """Whether the epoch's scalars let a DINO-style collapse be named (see _TEACHER_CONTEXT)."""
    temperatures = {"teacher_temperature", "student_temperature"} <= scalars.keys()
    return temperatures or not _TEACHER_CONTEXT.isdisjoint(scalars)


class CollapseLabError(Exception):
    """The server refused the monitor when it was created; the text says why."""


class AuthenticationError(CollapseLabError):
    """401/403: the server is write-protected and the token is missing or wrong."""


class CollapseLabWarning(UserWarning):
    """A problem that does not stop training: the server is unreachable, epochs were dropped,
    the token was refused after the start, or the first epoch sent is not 0."""


@dataclass(frozen=True)
class MonitorStats:
    """What happened to the logged epochs so far (a snapshot)."""

    delivered: list[int]
    pending: list[int]
    dropped: list[int]  # the buffer was full, or the server refused the message
    skipped: list[int]  # not sent: the arrays contained NaN or infinity
    disabled: str | None  # why the monitor stopped sending, when it did
    last_error: str | None


@dataclass(frozen=True)
class Verdict:
    """The server's latest verdict on the run: ``kind`` (``healthy``,
    ``dimensional_collapse``, ``complete_collapse``) at ``epoch``, the first epoch of its
    current streak (``onset_epoch``), the one-sentence ``reason`` and the whole verdict as
    the server sent it (``details``)."""

    epoch: int
    kind: str
    onset_epoch: int | None
    reason: str
    details: dict[str, Any]


# Registration fields a server may not know yet (older releases refuse them with a 422).
OPTIONAL_REGISTRATION_FIELDS = ("resume_key", "project", "tags", "note", "alerts")


def default_resume_key(name: str, config: Mapping[str, Any] | None = None) -> str | None:
    """The key a restarted job continues its run with, from its scheduler's environment:
    under SLURM the job id (with the array task id), under torchrun the rendezvous run id;
    scoped by the SLURM cluster, the run's name and a digest of the process's command line
    (``sys.argv``) and ``config``, so two clusters sharing a server, or two trainings of one
    job (a loop over seeds in one ``sbatch``, commands typed one after the other in an
    ``salloc`` session) never continue each other's run. A requeued job repeats its command
    line, so its runs find their keys again; a command line or config that changes at a
    restart (a timestamp in it) needs an explicit ``resume=`` key, and so does a second
    training that repeats the first one's command line and config in the same job."""
    env = os.environ
    if env.get("SLURM_JOB_ID"):
        job = env["SLURM_JOB_ID"]
        if env.get("SLURM_ARRAY_TASK_ID"):
            job += f"_{env['SLURM_ARRAY_TASK_ID']}"
        key = f"slurm:{env.get('SLURM_CLUSTER_NAME', '')}:{job}:{name}"
    elif (run_id := env.get("TORCHELASTIC_RUN_ID")) and run_id != "none":
        key = f"torchrun:{run_id}:{name}"
    else:
        return None
    training = {"argv": list(sys.argv), "config": _json_config(config)}
    canonical = json.dumps(training, sort_keys=True)
    key += ":" + hashlib.sha256(canonical.encode()).hexdigest()[:12]
    if len(key) > wire.MAX_RESUME_KEY:  # a long name: the key keeps its scheduler part readable
        key = key[: wire.MAX_RESUME_KEY - 17] + ":" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return key


# The default resume keys this process handed out (_claim_default_key), with their counts.
_DEFAULT_KEYS_TAKEN: dict[str, int] = {}
_DEFAULT_KEYS_LOCK = threading.Lock()


def _claim_default_key(key: str | None) -> str | None:
    """``key`` for the first monitor of this process that derives it, ``key#2``, ``key#3``...
    for the next ones: two monitors of one script (two models trained side by side, a
    loop of runs) get two runs, and a requeued job, which creates them in the same order,
    continues each."""
    if key is None:
        return None
    with _DEFAULT_KEYS_LOCK:
        count = _DEFAULT_KEYS_TAKEN[key] = _DEFAULT_KEYS_TAKEN.get(key, 0) + 1
    return key if count == 1 else f"{key[: wire.MAX_RESUME_KEY - 8]}#{count}"


def _refused_locations(response: httpx.Response) -> list[tuple[Any, ...]]:
    """Where a 422's errors point in the body: ``("tags", 1)``, ``("note",)``..."""
    try:
        body = response.json()
    except ValueError:
        return []
    errors = body.get("detail") if isinstance(body, dict) else None
    return [
        tuple(error["loc"][1:3])
        for error in (errors if isinstance(errors, list) else [])
        if isinstance(error, dict)
        and isinstance(error.get("loc"), list)
        and error["loc"][:1] == ["body"]
    ]


def drop_refused_fields(registration: dict[str, Any], response: httpx.Response) -> list[str]:
    """The optional registration fields a 422 names (a server older than resume keys or
    labels, or a label value it does not take), removed from ``registration``; of a list
    (tags), only the entries the 422 locates. What was removed, as the warnings name it."""
    if response.status_code != 422:
        return []
    locations = _refused_locations(response)
    refused: list[str] = []
    for field in OPTIONAL_REGISTRATION_FIELDS:
        if field not in registration:
            continue
        value = registration[field]
        entries = {loc[1] for loc in locations if len(loc) == 2 and loc[0] == field}
        if (field,) not in locations and entries and isinstance(value, list):
            refused.extend(f"{field}[{i}] {value[i]!r}" for i in sorted(entries) if i < len(value))
            registration[field] = [item for i, item in enumerate(value) if i not in entries]
        elif entries or (field,) in locations or (not locations and f'"{field}"' in response.text):
            refused.append(field)
            del registration[field]
    return refused


def _strings(values: str | Sequence[str]) -> list[str]:
    """A list of tags or URLs; one string is one of them (not its letters)."""
    return [values] if isinstance(values, str) else list(values)


def _mode(offline: bool | str | None) -> str:
    """The mode ("online", "offline" or "auto"): ``offline=``, else ``$COLLAPSE_LAB_MODE``."""
    if offline is None:
        mode = os.environ.get("COLLAPSE_LAB_MODE") or "online"
        if mode not in MODES:
            raise ValueError(f"COLLAPSE_LAB_MODE={mode!r} is not one of {', '.join(MODES)}")
        return mode
    mode = ("offline" if offline else "online") if isinstance(offline, bool) else offline
    if mode not in MODES:
        raise ValueError(f"offline={offline!r}: give True, False or 'auto'")
    return str(mode)


@dataclass
class _Item:
    """One queued request: an epoch message, or the closing finish call (epoch None)."""

    epoch: int | None
    body: bytes = b""
    finish: dict[str, Any] | None = None


def _what(item: _Item) -> str:
    """How a message names what it could not deliver."""
    return "the finish call" if item.epoch is None else f"epoch {item.epoch}"


def _as_array(value: Any, name: str) -> np.ndarray:
    """A numpy view of an array-like; torch tensors (any device, any dtype) without
    importing torch."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        tensor = value.detach().cpu()
        try:
            return np.asarray(tensor.numpy())
        except TypeError:  # bfloat16 and float8 have no numpy dtype
            return np.asarray(tensor.float().numpy())
    try:
        return np.asarray(value)
    except Exception as error:
        raise TypeError(
            f"{name} must be an array or a tensor, not {type(value).__name__}"
        ) from error


def _itemsize(value: Any) -> int:
    """Bytes per value of an array or tensor as the caller holds it (bfloat16: 2)."""
    element_size = getattr(value, "element_size", None)  # a torch tensor's
    if callable(element_size):
        return int(element_size())
    return int(np.asarray(value).dtype.itemsize)


def _float_matrix(value: Any, name: str, shape: str = "(N, d)") -> np.ndarray:
    """``value`` as a 2-D array of real numbers; ``shape`` names the expected one."""
    array = _as_array(value, name)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, not {array.dtype}")
    if array.ndim != 2:
        hint = ""
        if array.ndim == 3 and array.shape[0] == 1:  # the trap of lightly's (1, 1, K) centre
            hint = (
                ": a leading 1, as logits - center gives with lightly's DINOLoss centre "
                "(kept as (1, 1, K)); use center.reshape(-1)"
            )
        raise ValueError(f"{name} must be {shape}, got shape {array.shape}{hint}")
    if problem := wire.empty_problem(name, array.shape):
        raise ValueError(problem)
    return array


def _measurable(array: np.ndarray) -> bool:
    """Whether the diagnostics can measure ``array``: finite, within
    :data:`wire.MAX_MAGNITUDE` (beyond it the server refuses the epoch: training diverged)."""
    if not np.isfinite(array).all():
        return False
    return not array.size or wire.peak(array) <= wire.MAX_MAGNITUDE


def _number(value: Any, name: str) -> float | None:
    """A JSON-safe float (None for None, NaN, infinity and what overflows a float, which
    JSON cannot carry)."""
    if value is None:
        return None
    if hasattr(value, "item"):  # numpy scalar, 0-d tensor
        shape = tuple(getattr(value, "shape", ()))
        if math.prod(shape) != 1:
            raise ValueError(f"{name} must be one number, not an array of shape {shape}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, not {type(value).__name__}")
    try:
        number = float(value)
    except OverflowError:  # an integer of 400 digits
        return None
    return number if math.isfinite(number) else None


def _json_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is not None and not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (a dict), not {type(config).__name__}")
    # Researchers' configs hold Paths, enums, dtypes...: those travel as their str().
    try:
        text = json.dumps(dict(config or {}), default=str, allow_nan=False)
        plain: dict[str, Any] = json.loads(text)
        return plain
    except ValueError as error:
        raise ValueError(f"config must be JSON-serialisable without NaN: {error}") from error


def _one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line (a proxy's HTML error page spans many), at most ``limit`` long."""
    return " ".join(text.split())[:limit]


def _url_problem(url: str) -> str | None:
    """Why ``url`` is no http(s) address of a server; None when it is one. Checked where
    the URL is given (``Monitor``, the sync command): httpx would raise its own
    ``InvalidURL`` later (a bad port) or look up a host named "http:" (``http://``)."""
    if "://" not in url:  # ``localhost:8000`` parses as the scheme "localhost"
        return f"{url!r} must start with http:// or https:// (http://{url}?)"
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError) as error:  # an unclosed [, a bad port...
        return f"{url!r} is not a valid URL ({error})"
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return f"{url!r} is not an http:// or https:// address with a host"
    if parsed.query or parsed.fragment:  # the run links would be built on it
        return f"{url!r} has a query or a fragment: give the server's address alone"
    return None


def _token_problem(token: str) -> str | None:
    """Why ``token`` cannot be sent; None when it can. It goes in the Authorization header,
    which httpx encodes as ASCII (anything else raised UnicodeEncodeError) and h11 refuses
    with a control character or a space at its end (a token read from a file with its
    newline: every request failed as if the server were down). The token is not named."""
    if token.isascii() and token.isprintable() and not token.endswith(" "):
        return None
    return "the API token must be printable ASCII with no space at its end (an HTTP header)"


def _no_answer(base_url: str, problem: str) -> str:
    """What went wrong with a request worth retrying: the server was not reached, or it
    answered with a retryable status (``HTTP 503``: it is up but cannot serve now)."""
    if problem.startswith("HTTP "):
        return f"{base_url} cannot serve requests now ({problem})"
    return f"cannot reach {base_url} ({problem})"


def _auth_refusal(base_url: str, response: httpx.Response) -> str:
    """A 401/403 in words: the token refused, or none sent where the server needs one."""
    detail, _ = _response_detail(response)
    sent = "authorization" in response.request.headers
    what = "refused the token" if sent else "needs a token, and none was sent"
    return f"{base_url} {what} (HTTP {response.status_code}: {detail})"


def _response_detail(response: httpx.Response) -> tuple[str, str | None]:
    """The server's error text and code (FastAPI ``{"detail": ...}``, or the raw text), on
    one line."""
    try:
        payload = response.json()
    except (ValueError, RecursionError):
        return _one_line(response.text) or response.reason_phrase, None
    if not isinstance(payload, dict):
        return _one_line(json.dumps(payload)), None
    detail = payload.get("detail", payload)
    if isinstance(detail, list):  # a 422's validation errors
        detail = "; ".join(_validation_error(error) for error in detail)
    elif not isinstance(detail, str):
        detail = json.dumps(detail)
    code = payload.get("code")
    return _one_line(detail), code if isinstance(code, str) else None


def _validation_error(error: Any) -> str:
    """One error of a 422's list as ``field: message`` (``{"loc": ["body", "name"], "msg":
    ...}`` reads ``name: ...``)."""
    if not isinstance(error, dict):
        return json.dumps(error)
    where = [str(part) for part in error.get("loc") or [] if part != "body"]
    message = str(error.get("msg", "invalid"))
    return f"{'.'.join(where)}: {message}" if where else message


class Monitor:
    """Streams one training run's probe embeddings to a Collapse Lab server.

    ``url`` is the dashboard's address (or ``$COLLAPSE_LAB_URL``); ``token`` its
    ``API_TOKEN`` (or ``$COLLAPSE_LAB_TOKEN``), sent as ``Authorization: Bearer``.
    ``config`` is free-form JSON shown on the run page; the diagnosis reads a few of its keys
    (``optimizer``: weight decay is named as a cause under plain SGD only, e.g.
    ``config={"optimizer": "sgd", ...}``; docs/causes.md on the server). ``labels`` the
    probe labels, (N,) ints, used for every epoch that does not pass its own.

    On creation the run is registered (one request, at most ``timeout`` seconds), so
    ``run_id`` and ``url`` are known at once. A wrong URL or token raises here, before any
    training. If the server cannot be reached, a warning says so and registration is retried
    in the background with the epochs; ``run_id`` and ``url`` stay None until it succeeds.

    Buffer: at most ``max_buffer_epochs`` epochs and ``max_buffer_bytes`` bytes are not yet
    delivered (the one being sent included). When full, the oldest waiting epoch is dropped (never
    the first one logged, the verdict's baseline) with a warning; ``stats.dropped`` lists
    them. A 2,048 x 128 probe is 0.5 MiB per epoch in float16, so the defaults keep 100
    epochs of an outage. Offline nothing is dropped: ``log_epoch`` waits for the disk
    instead.

    ``precision="float32"`` sends exact float32 instead of float16 (twice the bytes); see
    ``collapse_lab.wire`` for why the float16 encoding keeps nearly collapsed embeddings.

    Use it as a context manager, or call :meth:`finish`; a script that exits without either
    still gets ``EXIT_FLUSH_TIMEOUT_S`` to upload and the run is closed as failed.

    **Labels**: ``project``, ``tags`` and ``note`` file the run on the dashboard (the runs
    list filters by them); ``alerts`` are webhook URLs the server tells when the run
    collapses, gets a cause, fails or finishes.

    **Resume** (``resume``): a monitor created with the key of an earlier one continues its
    run (same id and page, its epochs and baseline kept), reopened if it was finished.
    ``resume=None`` (the default) takes the key from the scheduler (:func:`default_resume_key`:
    a requeued SLURM job, a torchrun restart); ``resume=False`` always starts a new run.
    Epochs the run already holds are accepted again only with the same data (a restart from
    the checkpoint that logged them); other data is refused with a warning and the stored
    epoch kept. ``resumed`` and ``last_stored_epoch`` say what the server had.

    **Offline** (``offline=True``, or ``$COLLAPSE_LAB_MODE=offline``): no network; each
    epoch is written, atomically, to ``run_dir`` (``$COLLAPSE_LAB_DIR``, default
    ``./collapse-lab-runs``)/<run> in the wire format, for ``python -m collapse_lab sync``
    later. ``offline="auto"``: online, or offline when the server cannot be reached at
    creation. With a resume key the directory is named after it, so a requeued offline job
    writes on into the same one.

    **Verdict**: online, the sender thread keeps ``verdict`` (the server's latest
    :class:`Verdict`), ``collapsed`` and ``collapse_streak`` fresh, polling the run after each
    delivered epoch until the worker has measured it (between uploads too, when epochs wait);
    a resumed run's verdict is read when the monitor is created. The training thread only
    reads them.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        labels: Any = None,
        precision: str = "float16",
        max_buffer_epochs: int = DEFAULT_BUFFER_EPOCHS,
        max_buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        timeout: float = 10.0,
        source: Mapping[str, Any] | None = None,
        resume: str | bool | None = None,
        offline: bool | str | None = None,
        run_dir: str | Path | None = None,
        project: str | None = None,
        tags: str | Sequence[str] = (),
        note: str = "",
        alerts: str | Sequence[str] = (),
    ) -> None:
        self.mode = _mode(offline)
        url = url or os.environ.get("COLLAPSE_LAB_URL")
        if not url and self.mode != "offline":
            raise ValueError(
                "pass url= (the Collapse Lab address) or set COLLAPSE_LAB_URL, or offline=True"
            )
        if url and (problem := _url_problem(url)):
            raise ValueError(f"url: {problem}")
        token = token or os.environ.get("COLLAPSE_LAB_TOKEN")
        if token and (problem := _token_problem(token)):
            raise ValueError(f"{problem}: check token= or $COLLAPSE_LAB_TOKEN")
        if precision not in ("float16", "float32"):
            raise ValueError(f"precision must be 'float16' or 'float32', not {precision!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
        if max_buffer_epochs < 1 or max_buffer_bytes < 1:
            raise ValueError("max_buffer_epochs and max_buffer_bytes must be positive")
        self.base_url = (url or "").rstrip("/")
        self.run_id: str | None = None
        self.url: str | None = None
        self.run_dir: Path | None = None  # offline: where the run is written
        self.resumed = False  # the resume key found an earlier run (server or directory)
        self.last_stored_epoch: int | None = None  # its highest epoch when this one started
        self._local_root = Path(run_dir) if run_dir is not None else local.default_root()
        self.precision = precision
        self.max_buffer_epochs = max_buffer_epochs
        self.max_buffer_bytes = max_buffer_bytes
        self.max_probe_size = DEFAULT_MAX_PROBE_SIZE
        self.max_epoch_bytes = DEFAULT_MAX_EPOCH_BYTES
        # the arrays the server reads (its registration reply's "accepts"); a server that
        # predates the method internals lists none and reads the first protocol's arrays
        self.accepted_arrays: frozenset[str] = frozenset(wire.ARRAY_NAMES)
        self._labels = None if labels is None else self._check_labels(labels, None)
        script = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "<interactive>"
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a string, not {type(name).__name__}")
        # as the server stores it: without the spaces around it, and never blank
        name = (name or "").strip() or Path(script).stem or "external run"
        if len(name) > wire.MAX_NAME:
            raise ValueError(f"name must be at most {wire.MAX_NAME} characters, not {len(name)}")
        if resume is True or (resume is not None and not isinstance(resume, str | bool)):
            raise ValueError("resume must be a key (a string), None (the scheduler's) or False")
        if isinstance(resume, str) and not 0 < len(resume) <= wire.MAX_RESUME_KEY:
            raise ValueError(f"resume must be 1 to {wire.MAX_RESUME_KEY} characters")
        if resume is None:
            self.resume_key = _claim_default_key(default_resume_key(name, config))
        else:
            self.resume_key = resume or None
        self._resume_given = isinstance(resume, str)
        self._registration: dict[str, Any] = {
            "name": name,
            "config": _json_config(config),
            "source": {
                "host": socket.gethostname(),
                "script": script,
                "client_version": _client_version(),
                "python": platform.python_version(),
                "integration": "monitor",
                **dict(source or {}),
            },
        }
        if self.resume_key:  # only when set: servers before resume keys refuse the field
            self._registration["resume_key"] = self.resume_key
        # the run's labels, only those set (servers before labels refuse the fields)
        given = {
            "project": project,
            "tags": _strings(tags),
            "note": note,
            "alerts": _strings(alerts),
        }
        self._registration.update({key: value for key, value in given.items() if value})
        for field_name, value in self._registration.items():
            if (found := wire.unstorable_text(value)) is not None:
                where = "".join(f"[{step!r}]" for step in found[0])
                raise ValueError(
                    f"{field_name}{where} holds text that is not valid Unicode (a lone "
                    "surrogate such as '\\ud800') or holds a NUL ('\\x00'), which no server "
                    "can store"
                )
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # One key per Monitor: a registration retried after a lost reply finds the same run.
        self._idempotency = {"Idempotency-Key": uuid.uuid4().hex}
        self._http = httpx.Client(
            base_url=self.base_url or "http://offline.invalid",
            headers=headers,
            timeout=httpx.Timeout(60.0, connect=timeout),
        )
        self._cond = threading.Condition()
        self._queue: deque[_Item] = deque()
        self._buffered_bytes = 0  # of the epochs not yet delivered, the one in flight included
        self._in_flight: _Item | None = None
        self._delivered: list[int] = []
        self._dropped: list[int] = []
        self._skipped: list[int] = []
        self._held_with_other_data: set[int] = set()  # refused: the run holds them already
        self._disabled: str | None = None
        self._last_error: str | None = None
        self._warned: set[str] = set()
        self._last_epoch: int | None = None
        self._baseline: int | None = None  # the first epoch queued, kept until delivered
        self._queued_any = False  # an epoch skipped (NaN) is not the verdict's baseline
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._closed = False
        self._finished = threading.Event()
        self._finish_ok = False
        self._abort = threading.Event()
        self._outage_since: float | None = None
        # one attribute, replaced whole by the sender thread: a reader never sees a verdict
        # beside another verdict's streak
        self._judgement: tuple[Verdict | None, int] = (None, 0)
        self._poll_at: float | None = None  # when the sender next asks for the verdict
        self._poll_delay = FIRST_VERDICT_POLL_S
        self._judged = -1  # the run's highest measured epoch a poll saw
        self._poll_verdicts = True  # False once the server showed it has no run endpoint
        self._stop: dict[str, Any] = {}  # record_stop(): sent with the finish call

        self._offline_part: Path | None = None  # this run's directory, to upload first
        if self.mode == "offline":
            self._open_local()
        else:
            self._register_now(timeout)
            if self.run_dir is None:
                self._find_offline_part()
        self._thread = threading.Thread(target=self._run, name="collapse-lab-sender", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    # ----------------------------------------------------------------- caller's side

    def log_epoch(
        self,
        epoch: int,
        z: Any,
        h: Any = None,
        labels: Any = None,
        views: tuple[Any, Any] | None = None,
        loss: Any = None,
        *,
        target: Any = None,
        p: Any = None,
        predictor_weight: Any = None,
        teacher: Any = None,
        student: Any = None,
        codes: Any = None,
        loss_terms: Mapping[str, Any] | None = None,
        schedules: Mapping[str, Any] | None = None,
        **scalars: Any,
    ) -> None:
        """Queue one epoch for upload and return (milliseconds: validation and encoding).

        ``z``: (N, d) probe embeddings (projector output), numpy array or torch tensor on any
        device; ``h``: optional (N, d_h) backbone representation of the same N samples;
        ``labels``: (N,) ints, default the monitor's; ``views``: optional pair of (M, d)
        embeddings of two augmented views, row i of each a positive pair; ``loss`` and
        ``scalars`` (lr=..., any real numbers) are shown beside the diagnostics. N is at most
        the server's ``MAX_PROBE_SIZE`` (10,000 by default) and must stay the same: the
        probe set is fixed.

        Epoch 0 is the untrained network. The server's verdict compares every epoch with the
        first one logged (onset, trend), so a first epoch other than 0 gets a warning: the
        verdict then has no untrained baseline (unless the run may hold earlier epochs this
        monitor cannot see: offline, or the server unreachable, under a ``resume=`` key or
        in a requeued job). Epochs must increase; gaps are fine.

        Method internals on the same N probe rows give the run its mechanism panels and the
        cause of a collapse (docs/mechanisms.md on the server): ``target`` (N, d_t) the
        target branch's output (BYOL's EMA projection, SimSiam's other-view projection),
        ``p`` (N, d_t) the predictor's output for the row's z, ``predictor_weight`` a linear
        predictor's (d_t, d) matrix, ``teacher`` and ``student`` (N, K) a DINO-style loop's
        probabilities over K prototypes (after centering and sharpening: rows summing to 1;
        float16 and bfloat16 rows, which sum to 1 only within their rounding, are
        renormalised),
        ``codes`` (N, K) a clustering loop's assignments after balancing (SwAV's Sinkhorn
        codes, DeepCluster's one-hot pseudo-labels; not with ``teacher``),
        ``loss_terms={"loss_variance": ...}`` (unweighted terms) and ``schedules={"lr": ...,
        "weight_decay": ..., "ema_momentum": ..., "teacher_temperature": ...,
        "student_temperature": ..., "center_norm": ...}`` (scalars under those names;
        ``SCHEDULE_ALIASES`` maps common spellings such as ``momentum`` and ``wd`` onto
        them). A DINO-style loop that logs ``teacher``/``student`` without its EMA momentum,
        temperatures or centre norm gets ``undetermined`` rather than a guessed cause: a
        teacher that is the student shows the same entropy signatures (a warning at the
        first such epoch says so). A server that predates the internals is sent the rest (a
        warning says so).

        Raises ``ValueError``/``TypeError`` for the caller's bugs (shapes, types, an array
        without values, epoch order, N over the limit, a message larger than the buffer)
        and ``RuntimeError`` after :meth:`finish`. Arrays with NaN, infinity or values
        beyond 1e15 in magnitude (training diverged) are not sent: a warning, and
        ``stats.skipped`` lists the epoch.
        """
        if self._closed:
            raise RuntimeError("log_epoch() after finish(): create a new Monitor for a new run")
        if isinstance(epoch, bool) or not isinstance(epoch, numbers.Integral) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative integer, got {epoch!r}")
        epoch = int(epoch)
        if epoch > wire.MAX_EPOCH:
            raise ValueError(
                f"epoch {epoch} is beyond the protocol's {wire.MAX_EPOCH}: log epochs, not "
                "optimiser steps"
            )
        if self._last_epoch is not None and epoch <= self._last_epoch:
            raise ValueError(f"epochs must increase: {epoch} after {self._last_epoch}")
        arrays = self._check_arrays(z, h, labels, views)
        arrays |= self._check_internals(
            arrays["z"].shape,
            {"target": target, "p": p, "predictor_weight": predictor_weight},
            {"teacher": teacher, "student": student, "codes": codes},
        )
        for group, values in (("loss_terms", loss_terms), ("schedules", schedules)):
            if values is not None and not isinstance(values, Mapping):
                raise TypeError(f"{group} must be a mapping of names to numbers")
            for given, value in (values or {}).items():
                name = SCHEDULE_ALIASES.get(given, given) if group == "schedules" else given
                if not isinstance(name, str) or name in scalars:
                    raise ValueError(f"{group}: {given!r} is not a name, or given twice")
                scalars[name] = value
        for name in scalars:
            if not wire.is_storable(name):
                raise ValueError(
                    f"the scalar name {name!r} is not valid Unicode or holds a NUL, which no "
                    "server can store"
                )
        bad = [n for n, a in arrays.items() if n != "labels" and not _measurable(a)]
        if not bad:
            body = wire.encode_epoch(
                epoch,
                arrays,
                loss=None if loss is None else _number(loss, "loss"),
                scalars={k: _number(v, k) for k, v in scalars.items()},
                logged_at=time.time(),
                precision=self.precision,
            )
            limit = min(self.max_epoch_bytes, self.max_buffer_bytes)
            if len(body) > limit:
                raise ValueError(
                    f"epoch {epoch} encodes to {len(body) / 2**20:.1f} MiB, over the "
                    f"{limit / 2**20:.1f} MiB limit (the server's max_epoch_bytes or "
                    "max_buffer_bytes): log fewer probe samples or a narrower h"
                )
        self._last_epoch = epoch
        for name in ("z", "h"):  # the probe's widths, fixed from the first accepted epoch
            if name in arrays:
                self._shapes.setdefault(name, arrays[name].shape)
        if not bad and not self._queued_any:
            self._queued_any = True
            self._baseline = epoch
            if epoch != 0 and self.last_stored_epoch is None and not self._may_continue():
                skipped = f" (epochs {self._skipped} were skipped)" if self._skipped else ""
                self._warn(
                    "baseline",
                    f"the first epoch sent is {epoch}, not 0{skipped}: the verdict compares "
                    f"every epoch with the first one sent, so it has no untrained baseline and "
                    f"its onset epoch counts from {epoch}. Log the untrained network as "
                    "epoch 0 first.",
                )
        dino_style = teacher is not None and student is not None
        told = "teacher_context" in self._warned  # once: it holds for the whole run
        if teacher is not None and student is None and "teacher_alone" not in self._warned:
            self._warn(
                "teacher_alone",
                "teacher= is logged without student=: a collapse will get no cause from it "
                "(a DINO teacher piled onto one prototype looks like a clustering loop's "
                "unbalanced codes, and the two need different fixes). A DINO-style loop logs "
                "student= too; a clustering loop (SwAV, DeepCluster) logs its codes as codes=.",
            )
        if dino_style and not told and not _tells_teacher_apart(scalars):
            self._warn(
                "teacher_context",
                "teacher= and student= are logged without the EMA momentum, the centre's "
                "norm or both temperatures: a collapse will get the cause 'undetermined', "
                "since a teacher that is the student itself shows the same entropy "
                "signatures. Log schedules={'momentum': ..., 'teacher_temp': ..., "
                "'student_temp': ..., 'center': ...}.",
            )
        if bad:
            self._skipped.append(epoch)
            self._warn(
                "nonfinite",
                f"epoch {epoch}: {', '.join(bad)} {'contains' if len(bad) == 1 else 'contain'} "
                f"NaN or infinity, or values beyond {wire.MAX_MAGNITUDE:.0e} in magnitude "
                "(training diverged?); such epochs are not sent "
                "(stats.skipped lists them)",
            )
            return
        with self._cond:
            # offline, nothing is dropped: wait for the disk to take what is queued instead
            while self.run_dir is not None and self._full(len(body)) and self._busy():
                self._cond.wait()
            if self._disabled:
                self._dropped.append(epoch)
                return
            self._queue.append(_Item(epoch, body))
            self._buffered_bytes += len(body)
            self._shed_overflow()
            self._cond.notify_all()

    def finish(self, timeout: float = 60.0, error: str | None = None) -> bool:
        """Wait up to ``timeout`` seconds for the buffered epochs, then close the run
        (``failed`` with ``error`` when given, else ``succeeded``).

        Returns True when every epoch that was not dropped or skipped arrived and the run
        was closed; False (with a warning listing what is left) otherwise. A second call
        returns the first one's result. Online, ``verdict`` is then the server's verdict on
        the last delivered epoch (waited for up to ``FINAL_VERDICT_WAIT_S`` within
        ``timeout``: the server measures an epoch within a second or so).
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            already = self._closed
            # never registered, nothing logged, the server unreachable: nothing to wait for
            empty = (
                self.run_id is None and self._last_epoch is None and self._outage_since is not None
            )
            if not already:
                self._closed = True
                status = "failed" if error else "succeeded"
                if error:  # refused whole by the server otherwise: the run left running
                    error = wire.storable_text(error, wire.MAX_ERROR)
                finish = {"status": status, "error": error, **self._stop}
                self._queue.append(_Item(None, finish=finish))
                self._cond.notify()
        if already:
            self._finished.wait(timeout)
            return self._finish_ok
        atexit.unregister(self._at_exit)
        if empty and self.run_dir is None:
            logger.info("Collapse Lab: no epoch logged and %s never reached", self.base_url)
            self._abort.set()
            self._finished.set()  # a second finish() returns at once too
            self._http.close()
            return False
        finished = self._finished.wait(min(timeout, FINISH_QUIET_S))
        if not finished and self._outage_since is not None and not self._disabled:
            # a wait the length of the timeout would look like a hang: say what it waits for
            self._warn(
                "finish-waiting",
                f"finish() waits up to {timeout:g} s for {self.base_url} to take epochs "
                f"{self.stats.pending} and close the run ({self._waiting_on()})",
            )
        finished = finished or self._finished.wait(max(0.0, deadline - time.monotonic()))
        if not finished and not self._disabled:
            left = self.stats.pending
            self._warn(
                "finish-timeout",
                f"finish() timed out after {timeout:g} s: "
                + (f"epochs {left} were not delivered and " if left else "")
                + f"the run was not closed ({self._waiting_on()})",
            )
        self._abort.set()
        with self._cond:
            self._cond.notify()
        # a request still waiting on a hung server is cut by closing the client below
        self._thread.join(timeout=max(THREAD_EXIT_S, deadline - time.monotonic()))
        if self._finish_ok and self.run_id is not None and not self._thread.is_alive():
            self._await_final_verdict(min(deadline, time.monotonic() + FINAL_VERDICT_WAIT_S))
        self._http.close()
        return self._finish_ok

    def _waiting_on(self) -> str:
        """What finish() waits for, for its warnings."""
        if self._last_error is None:
            return f"{self.base_url} has not answered the last request yet"
        return f"last error: {self._last_error}"

    def _await_final_verdict(self, deadline: float) -> None:
        """Poll the run (the sender thread has stopped) until the last delivered epoch is
        judged or ``deadline``, so that ``verdict`` is the run's final one."""
        with self._cond:
            self._poll_delay = FIRST_VERDICT_POLL_S
            self._poll_at = time.monotonic() if self._poll_verdicts and self._delivered else None
        while self._poll_at is not None and time.monotonic() < deadline:
            time.sleep(max(0.0, min(self._poll_at, deadline) - time.monotonic()))
            if not self._poll_verdict():
                return  # no run to read (an error, a server without the endpoint): no wait

    @property
    def stats(self) -> MonitorStats:
        """Delivered, pending, dropped and skipped epochs, and why sending stopped."""
        with self._cond:
            queued = [*([self._in_flight] if self._in_flight else []), *self._queue]
            return MonitorStats(
                delivered=list(self._delivered),
                pending=[i.epoch for i in queued if i.epoch is not None],
                dropped=list(self._dropped),
                skipped=list(self._skipped),
                disabled=self._disabled,
                last_error=self._last_error,
            )

    @property
    def closed(self) -> bool:
        """Whether :meth:`finish` was called: the run takes no more epochs."""
        return self._closed

    @property
    def offline(self) -> bool:
        """Whether the run is written to ``run_dir`` rather than sent."""
        return self.run_dir is not None

    @property
    def verdict(self) -> Verdict | None:
        """The server's latest verdict on this run (None offline, or before the first)."""
        return self._judgement[0]

    @property
    def collapsed(self) -> bool:
        """Whether the server's latest verdict is complete collapse."""
        verdict = self._judgement[0]
        return verdict is not None and verdict.kind == COMPLETE_COLLAPSE

    @property
    def collapse_streak(self) -> int:
        """How many logged epochs of the run lie in the current complete collapse (from its
        onset to the latest verdict): this monitor's and, for a resumed run, those of the
        processes before it; 0 when not collapsed."""
        return self._judgement[1]

    @property
    def judgement(self) -> tuple[Verdict | None, int]:
        """``(verdict, collapse_streak)`` read together: the streak is that verdict's."""
        return self._judgement

    def record_stop(self, epoch: int, reason: str | None = None) -> None:
        """Note that the training stopped after ``epoch`` because of ``reason`` (stop on
        collapse): the finish call tells the server, and the run page shows it."""
        if reason is not None:  # the page shows a sentence
            reason = wire.storable_text(reason, wire.MAX_STOP_REASON)
        self._stop = {"stopped_at_epoch": int(epoch), "stop_reason": reason}

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(error=None if exc is None else f"{exc_type.__name__}: {exc}")

    def __repr__(self) -> str:
        if self.run_dir is not None:
            return f"Monitor(run_dir={str(self.run_dir)!r})"
        return f"Monitor(run_id={self.run_id!r}, url={self.url!r})"

    # ----------------------------------------------------------------- validation

    def _check_labels(self, labels: Any, rows: int | None) -> np.ndarray:
        array = _as_array(labels, "labels")
        if array.ndim != 1:
            raise ValueError(f"labels must be (N,), got shape {array.shape}")
        if array.dtype.kind == "f" and np.array_equal(array, np.round(array)):
            array = array.astype(np.int64)
        if array.dtype.kind not in "iu":
            raise TypeError(f"labels must be integers, not {array.dtype}")
        if rows is not None and array.shape[0] != rows:
            raise ValueError(f"labels has {array.shape[0]} entries, z has {rows} rows")
        if array.size and (array.min() < INT32_MIN or array.max() > INT32_MAX):
            raise ValueError("labels must fit in 32 bits (class indices)")
        return array.astype(np.int32)

    def _check_arrays(
        self, z: Any, h: Any, labels: Any, views: tuple[Any, Any] | None
    ) -> dict[str, np.ndarray]:
        arrays = {"z": _float_matrix(z, "z")}
        rows, width = arrays["z"].shape
        if rows < 2 or width < 1:
            raise ValueError(f"z needs at least 2 rows and 1 column, got shape {(rows, width)}")
        if rows > self.max_probe_size:
            raise ValueError(
                f"z has {rows} rows, over the server's MAX_PROBE_SIZE {self.max_probe_size}"
            )
        if rows < width:
            self._warn(
                "small-probe",
                f"the probe has N={rows} samples for d={width} dimensions: the effective "
                "rank cannot exceed N, and RankMe needs N much larger than d",
            )
        elif rows < SMALL_PROBE:
            self._warn(
                "small-probe",
                f"the probe has N={rows} samples: statistics of so few rows (random-pair "
                f"cosine, rank, kNN) are mostly noise, and so is a verdict read from them; "
                f"log a fixed probe of {SMALL_PROBE} samples or more (built-in runs: 2,048)",
            )
        if h is not None:
            arrays["h"] = _float_matrix(h, "h")
            if arrays["h"].shape[0] != rows:
                raise ValueError(f"h has {arrays['h'].shape[0]} rows, z has {rows}")
        labels = self._labels if labels is None else labels
        if labels is not None:
            arrays["labels"] = self._check_labels(labels, rows)
        if views is not None:
            if not isinstance(views, tuple | list) or len(views) != 2:
                raise ValueError("views must be a pair (views_a, views_b)")
            a, b = _float_matrix(views[0], "views[0]"), _float_matrix(views[1], "views[1]")
            if a.shape != b.shape or a.shape[1] != width or a.shape[0] < 2:
                raise ValueError(
                    f"views must be two (M, {width}) arrays with M >= 2, got {a.shape} and "
                    f"{b.shape}"
                )
            if a.shape[0] > self.max_probe_size:
                raise ValueError(f"views have {a.shape[0]} rows, over {self.max_probe_size}")
            arrays["views_a"], arrays["views_b"] = a, b
        for name in ("z", "h"):
            if name in arrays:
                shape = arrays[name].shape
                first = self._shapes.get(name, shape)  # recorded by log_epoch once accepted
                if shape != first:
                    raise ValueError(
                        f"{name} is {shape} but was {first} at the first epoch: the probe set "
                        "and the model's widths stay fixed during a run"
                    )
        return arrays

    def _check_internals(
        self, z_shape: tuple[int, ...], matrices: dict[str, Any], probabilities: dict[str, Any]
    ) -> dict[str, np.ndarray]:
        """The method internals given, checked: per-sample rows as z's, p shaped as target,
        the predictor a (d_t, d) matrix from z's width to the target's, teacher and student
        probabilities of one shape, codes probabilities without them."""
        rows, width = z_shape
        arrays: dict[str, np.ndarray] = {}
        for name, value in {**matrices, **probabilities}.items():
            if value is None:
                continue
            if name == "predictor_weight":
                arrays[name] = _float_matrix(value, name, "(d_t, d)")
                continue
            shape = "(N, K)" if name in probabilities else "(N, d)"  # K classes or prototypes
            arrays[name] = _float_matrix(value, name, shape)
            if arrays[name].shape[0] != rows:
                raise ValueError(f"{name} has {arrays[name].shape[0]} rows, z has {rows}")
        if "p" in arrays and "target" in arrays and arrays["p"].shape != arrays["target"].shape:
            raise ValueError(
                f"p {arrays['p'].shape} and target {arrays['target'].shape} must have one "
                "shape: p predicts the target"
            )
        if problem := wire.predictor_weight_problem(arrays, width):
            raise ValueError(problem)
        teacher, student = arrays.get("teacher"), arrays.get("student")
        if teacher is not None and student is not None and teacher.shape != student.shape:
            raise ValueError(wire.TEACHER_STUDENT_SHAPE)
        if "codes" in arrays and (teacher is not None or student is not None):
            raise ValueError(wire.CODES_OR_TEACHER)
        for name, value in probabilities.items():
            probs = arrays.get(name)
            if probs is None or not np.isfinite(probs).all():
                continue  # a diverged epoch is skipped with a warning, as for z
            low_precision = _itemsize(value) <= 2
            atol = LOW_PRECISION_SUM_ATOL if low_precision else wire.PROBABILITY_SUM_ATOL
            sums = probs.sum(axis=1, dtype=np.float64)
            if probs.min() < 0 or not np.allclose(sums, 1, rtol=0, atol=atol):
                raise ValueError(
                    f"{name} must hold probabilities (rows of non-negative numbers summing "
                    f"to 1 within {atol:g}): {wire.APPLY_SOFTMAX}"
                )
            if low_precision:  # the server checks the sums against PROBABILITY_SUM_ATOL
                arrays[name] = (probs / sums[:, None]).astype(np.float32)
        return arrays

    # ----------------------------------------------------------------- reporting

    def _may_continue(self) -> bool:
        """Whether the run may hold epochs this monitor cannot see: not registered (offline,
        or the server unreachable) under a resume key the caller gave, or one derived in a
        job its scheduler restarted (whose earlier try may have logged online)."""
        if self.run_id is not None or not self.resume_key:
            return False
        return self._resume_given or _restarted()

    def _warn(self, key: str, message: str) -> None:
        """Log every time; show a warning once per kind of problem."""
        logger.warning("%s", message)
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(f"Collapse Lab: {message}", CollapseLabWarning, stacklevel=3)

    def _gave_up(self, item: _Item, error: str, key: str, message: str) -> None:
        """One epoch or the finish call could not be delivered: remember why, warn, and,
        for the finish call, let close() stop waiting."""
        self._last_error = error
        self._warn(key, message)
        if item.epoch is None:
            self._finished.set()

    def _disable(self, reason: str) -> None:
        with self._cond:
            self._disabled = reason
            for item in [*([self._in_flight] if self._in_flight else []), *self._queue]:
                if item.epoch is not None:
                    self._dropped.append(item.epoch)
            self._queue.clear()
            self._buffered_bytes = len(self._in_flight.body) if self._in_flight else 0
        self._warn("disabled", f"{reason}; no further epochs are sent for this run")
        self._finished.set()

    def _busy(self) -> bool:
        """Whether an epoch is queued or being sent (caller holds the lock)."""
        return bool(self._queue) or self._in_flight is not None

    def _full(self, adding: int = 0) -> bool:
        """Whether the buffer is over its bounds with ``adding`` more bytes (caller holds the
        lock); the epoch being sent counts too."""
        epochs = len(self._queue) + (self._in_flight is not None) + (adding > 0)
        return (
            epochs > self.max_buffer_epochs or self._buffered_bytes + adding > self.max_buffer_bytes
        )

    def _shed_overflow(self) -> None:
        """Drop the oldest waiting epochs beyond the buffer bounds (caller holds the lock),
        keeping the first epoch logged: without it the verdict has no baseline. The epoch
        being sent counts too, so the bound does not depend on the sender's timing."""
        while self._full():
            victim = next(
                (i for i in self._queue if i.epoch is not None and i.epoch != self._baseline),
                None,
            )
            if victim is None or victim.epoch is None:
                return
            self._queue.remove(victim)
            self._buffered_bytes -= len(victim.body)
            self._dropped.append(victim.epoch)
            self._warn(
                "dropped",
                f"upload buffer full ({self.max_buffer_epochs} epochs / "
                f"{self.max_buffer_bytes / 2**20:.0f} MiB): dropped epoch {victim.epoch} "
                f"(stats.dropped lists every dropped epoch)",
            )

    # ----------------------------------------------------------------- network side

    def _register_now(self, timeout: float) -> None:
        response = None
        while response is None or self._drop_unknown_fields(response):
            try:
                response = self._http.post(
                    "/api/external-runs",
                    json=self._registration,
                    headers=self._idempotency,
                    timeout=timeout,
                )
            except httpx.HTTPError as error:
                self._unreachable_at_start(f"{type(error).__name__}: {error}")
                return
        if response.status_code in RETRYABLE_STATUSES:
            self._unreachable_at_start(f"HTTP {response.status_code}")
            return
        problem = self._registered(response)
        if not problem and self.resumed:  # the run's verdict so far, before any epoch
            self._poll_verdict()
        if problem:
            self._http.close()
            error_type = (
                AuthenticationError if response.status_code in (401, 403) else CollapseLabError
            )
            raise error_type(problem)

    def _unreachable_at_start(self, problem: str) -> None:
        if self.mode != "auto":
            self._note_outage(problem, at_start=True)
            return
        self._open_local()
        self._warn(
            "offline",
            f"{_no_answer(self.base_url, problem)}: the run is written to {self.run_dir}; "
            f"upload it later with: python -m collapse_lab sync {self.run_dir} {self.base_url}",
        )

    def _open_local(self) -> None:
        """Write this run to a local directory (offline mode); a resume key's directory
        that exists already is continued, with the Idempotency-Key it was created with."""
        name = str(self._registration["name"])
        self.run_dir = local.run_directory(self._local_root, name, self.resume_key)
        existed = (self.run_dir / local.RUN_FILE).exists()
        meta = local.create(self.run_dir, self._registration, self._idempotency["Idempotency-Key"])
        if existed:
            self._idempotency = {"Idempotency-Key": str(meta["idempotency_key"])}
            stored = local.stored_epochs(self.run_dir)
            self.resumed = True
            self.last_stored_epoch = max(stored) if stored else None
        logger.info("Collapse Lab run written to %s", self.run_dir)

    def _find_offline_part(self) -> None:
        """An earlier try of this job that wrote its run offline (``offline="auto"`` with
        the server down) left the resume key's directory: the run goes on here, online, so
        its epochs are uploaded first (by the sender, before this monitor's) and its
        finish.json, which no longer ends the run, is removed (a later sync would close
        the run this monitor writes). Counted as resumed from the directory's last epoch."""
        if not self.resume_key:
            return
        name = str(self._registration["name"])
        run_dir = local.run_directory(self._local_root, name, self.resume_key)
        epochs = local.stored_epochs(run_dir) if (run_dir / local.RUN_FILE).is_file() else {}
        if not epochs:
            return
        try:
            (run_dir / local.FINISH_FILE).unlink(missing_ok=True)
        except OSError as error:  # a read-only directory: the run goes on online all the same
            self._warn(
                "offline-part",
                f"cannot remove {local.FINISH_FILE} of the run's offline part in {run_dir} "
                f"({error.strerror or error}): a later sync of that directory would close this "
                "run; remove the file by hand",
            )
        self._offline_part = run_dir
        self.resumed = True
        self.last_stored_epoch = max(max(epochs), self.last_stored_epoch or 0)

    def _upload_offline_part(self, run_dir: Path) -> None:
        """Upload the epochs of the directory :meth:`_find_offline_part` found that the
        server does not hold, as ``python -m collapse_lab sync`` does (its ``sync.json``
        updated, so a later sync has nothing left to send)."""
        from . import sync  # sync builds on this module

        self._offline_part = None
        quiet = sync.Progress(run_dir.name, io.StringIO())
        try:
            syncer = sync.RunSync(self._http, self.base_url, run_dir, quiet)
            syncer.step()
            # the run goes on here: a later sync of the directory has nothing left to do
            syncer.state.continued_online = True
            syncer.save_state()
        except (local.NotARunError, sync.SyncAborted, sync.TokenRefused, OSError) as error:
            # the run goes on online whatever the directory's trouble (a full disk, say)
            self._warn("offline-part", f"the run's offline part in {run_dir} not uploaded: {error}")
            return
        refused = sorted(syncer.state.refused)
        logger.info(
            "Collapse Lab: uploaded %d epochs of the run's offline part in %s%s",
            syncer.sent,
            run_dir,
            f" ({len(refused)} refused: {refused})" if refused else "",
        )
        if refused:
            self._warn(
                "offline-part",
                f"epochs {refused} of the run's offline part in {run_dir} were refused: "
                "python -m collapse_lab sync names why",
            )

    def _drop_unknown_fields(self, response: httpx.Response) -> bool:
        """A server older than resume keys or run labels refuses those fields (422 naming
        them): register without them. True when the registration should be sent again."""
        refused = drop_refused_fields(self._registration, response)
        why = _response_detail(response)[0][:300]
        if "resume_key" in refused:
            self._warn(
                "no-resume",
                f"{self.base_url} does not know resume keys (an older server): this job starts "
                "a new run instead of continuing the run of its resume key",
            )
        if dropped := [field for field in refused if field != "resume_key"]:
            self._warn(
                "no-labels",
                f"{self.base_url} refuses the run labels {', '.join(dropped)} (an older server, "
                f"or a value it does not take: {why}): the run is registered without them",
            )
        return bool(refused)

    def _registered(self, response: httpx.Response) -> str | None:
        """Take the run from a registration reply; the problem, if it is a refusal."""
        if response.status_code in (401, 403):
            return (
                f"{_auth_refusal(self.base_url, response)}; "
                "pass token= or set COLLAPSE_LAB_TOKEN to the server's API_TOKEN"
            )
        if not response.is_success:
            detail, _ = _response_detail(response)
            hint = (  # a wrong path or port answers 404 or 405, as the sync says too
                "; is this the address of a Collapse Lab server with external runs?"
                if response.status_code in (404, 405)
                else ""
            )
            return (
                f"{self.base_url} refused to register the run (HTTP {response.status_code}: "
                f"{detail}){hint}"
            )
        try:
            payload = response.json()
        except (ValueError, RecursionError):
            payload = None
        payload = payload if isinstance(payload, dict) else {}
        run_id = payload.get("id")
        if not isinstance(run_id, str | int) or isinstance(run_id, bool) or run_id == "":
            return (
                f"{self.base_url} answered the registration without a run id: "
                f"{_one_line(response.text, 200)}"
            )
        self.run_id = str(run_id)
        page = str(payload.get("url") or f"/runs/{self.run_id}")
        self.url = page if page.startswith(("http://", "https://")) else self.base_url + page
        accepts = payload.get("accepts")
        self.accepted_arrays = frozenset(accepts if isinstance(accepts, list) else wire.BASE_ARRAYS)
        limits = payload.get("limits")
        limits = limits if isinstance(limits, dict) else {}
        self.max_probe_size = _positive_int(limits.get("max_probe_size"), self.max_probe_size)
        self.max_epoch_bytes = _positive_int(limits.get("max_epoch_bytes"), self.max_epoch_bytes)
        self.resumed = bool(payload.get("resumed"))
        last = payload.get("last_epoch")
        self.last_stored_epoch = last if isinstance(last, int) else None
        if self.resumed:
            with self._cond:  # its verdict so far: collapsed already, and since when
                self._poll_at = time.monotonic() if self._poll_verdicts else None
            logger.info(
                "Collapse Lab run %s continues (last stored epoch %s): %s",
                self.run_id,
                self.last_stored_epoch,
                self.url,
            )
        else:
            logger.info("Collapse Lab run %s: %s", self.run_id, self.url)
        return None

    def _note_outage(self, problem: str, at_start: bool = False) -> None:
        self._last_error = problem
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            # a server never reached may be a wrong address: say where else epochs can go
            memory_only = (
                "; they are in this process's memory only: Monitor(..., offline='auto') "
                "writes them to disk when the server cannot be reached"
                if at_start
                else ""
            )
            self._warn(
                "unreachable",
                f"{_no_answer(self.base_url, problem)}; training goes on, epochs are "
                f"buffered (up to {self.max_buffer_epochs} epochs / "
                f"{self.max_buffer_bytes / 2**20:.0f} MiB) and sent when it is back" + memory_only,
            )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        """Send until the server answers with a non-retryable status; None when aborted.

        A plain loop rather than a retry library: it must stop at once when finish() gives
        up, honour Retry-After, and retry forever otherwise (the buffer bounds the cost).
        """
        delay = FIRST_BACKOFF_S
        while not self._abort.is_set():
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.HTTPError as error:
                problem, wait = f"{type(error).__name__}: {error}", None
            else:
                if response.status_code not in RETRYABLE_STATUSES:
                    if self._outage_since is not None:
                        logger.info(
                            "Collapse Lab server reachable again after %.0f s",
                            time.monotonic() - self._outage_since,
                        )
                        self._outage_since = None
                    return response
                problem = f"HTTP {response.status_code}"
                wait = _retry_after(response)
            self._note_outage(problem)
            # Jitter: clients that lost the same server do not all come back at once.
            if self._abort.wait(wait if wait is not None else delay * random.uniform(0.5, 1.0)):
                break
            delay = min(delay * 2, MAX_BACKOFF_S)
        return None

    def _run(self) -> None:
        """Sender thread: registration first, then the queue in order."""
        try:
            while self._send_next():
                pass
        except Exception as error:  # a bug here must not leave finish() waiting in silence
            if self._abort.is_set():  # finish() gave up and closed the HTTP client under us
                return
            logger.exception("Collapse Lab sender thread failed")
            self._disable(f"internal error in the upload thread: {error!r}")

    def _send_next(self) -> bool:
        """Send the queue's head; False when the thread should stop. First ask for the
        verdict when a poll is due, epochs waiting or not: a training that logs faster than
        it uploads still learns of its collapse."""
        with self._cond:
            while not self._abort.is_set():
                wait = None if self._poll_at is None else self._poll_at - time.monotonic()
                if wait is not None and wait <= 0:
                    self._cond.release()
                    try:
                        self._poll_verdict()
                    finally:
                        self._cond.acquire()
                elif self._queue:
                    break
                else:
                    self._cond.wait(wait)
            if self._abort.is_set() or self._disabled:
                return False
            item = self._in_flight = self._queue.popleft()
        if self.run_dir is not None:
            delivered = self._write_local(item)
        else:
            registered = self.run_id is not None or self._register_later()
            if registered and self._offline_part is not None:
                self._upload_offline_part(self._offline_part)
            delivered = registered and self._deliver(item)
        with self._cond:
            self._in_flight = None
            self._cond.notify_all()  # an offline log_epoch may wait for room
            if self._abort.is_set() and not delivered:  # finish() gave up: still pending
                self._queue.appendleft(item)
                return False
            self._buffered_bytes -= len(item.body)
            if delivered or self._disabled:
                return True
            if item.epoch is not None:  # refused by the server: warned about in _deliver
                self._dropped.append(item.epoch)
            return True

    def _register_later(self) -> bool:
        response = None
        while response is None or self._drop_unknown_fields(response):
            response = self._request(
                "POST", "/api/external-runs", json=self._registration, headers=self._idempotency
            )
            if response is None:
                return False
        problem = self._registered(response)
        if problem:
            self._disable(problem)
            return False
        return True

    def _deliver(self, item: _Item) -> bool:
        """One request; True when the server took it."""
        if item.epoch is None:
            path = f"/api/external-runs/{self.run_id}/finish"
            # Built now, not when finish() was called: epochs refused while draining count.
            with self._cond:
                dropped, skipped = self._not_on_the_server(), sorted(self._skipped)
            lists = {"epochs_dropped": dropped, "epochs_skipped": skipped}
            body = {**(item.finish or {}), **lists}
            response = self._request("POST", path, json=body)
            if response is not None and response.status_code == 422 and "stop_reason" in body:
                # a server older than stop on collapse: close the run without saying why
                del body["stopped_at_epoch"], body["stop_reason"]
                response = self._request("POST", path, json=body)
        else:
            path = f"/api/external-runs/{self.run_id}/epochs/{item.epoch}"
            message = self._for_server(item.body)
            response = self._request(
                "PUT", path, content=message, headers={"Content-Type": wire.CONTENT_TYPE}
            )
        if response is None:
            return False
        if response.is_success:
            if item.epoch is None:
                self._finish_ok = True
                self._finished.set()
            else:
                self._note_delivered(item.epoch)
            return True
        detail, code = _response_detail(response)
        status = response.status_code
        if status in (401, 403):
            self._disable(_auth_refusal(self.base_url, response))
        elif status == 404 or (status == 409 and code != "epoch_conflict"):
            self._disable(f"run {self.run_id} no longer takes uploads (HTTP {status}: {detail})")
        else:
            hint = ""
            if code == "epoch_conflict" and item.epoch is not None:
                self._held_with_other_data.add(item.epoch)
                hint = self._other_training_hint(item.epoch)
            self._gave_up(
                item,
                f"HTTP {status}: {detail}",
                "refused",
                f"the server refused {_what(item)} (HTTP {status}: {detail}){hint}",
            )
        return False

    def _other_training_hint(self, epoch: int) -> str:
        """What a refused epoch 0 of a resumed run means: a restart continues from a
        checkpoint, a new training starts from epoch 0 with other weights."""
        if epoch != 0 or not self.resumed:
            return ""
        return (
            f"; an epoch 0 with other data is another training under the resume key "
            f"{self.resume_key!r} (same job, command line and config), not a restart of the "
            "run: give it its own resume= key, or resume=False"
        )

    def _not_on_the_server(self) -> list[int]:
        """The finish call's ``epochs_dropped``: the dropped epochs the run lacks (an epoch
        refused because the run holds it with other data is there; caller holds the lock)."""
        return sorted(set(self._dropped) - self._held_with_other_data)

    def _for_server(self, body: bytes) -> bytes:
        """The message less the arrays this server does not read (a server older than the
        method internals refuses unknown arrays)."""
        unread = set(wire.array_names(body)) - self.accepted_arrays
        if not unread:
            return body
        self._warn(
            "no-internals",
            f"{self.base_url} predates the method internals ({', '.join(sorted(unread))}): "
            "they are not sent, the embeddings are",
        )
        return wire.without_arrays(body, unread)

    def _note_delivered(self, epoch: int) -> None:
        with self._cond:
            self._delivered.append(epoch)
            if epoch == self._baseline:
                self._baseline = None  # delivered: it may no longer block shedding
            # a poll already planned keeps its time: epochs delivered back to back would
            # otherwise push it back for as long as they come
            if self.run_dir is None and self._poll_verdicts and self._poll_at is None:
                self._poll_delay = FIRST_VERDICT_POLL_S
                self._poll_at = time.monotonic() + self._poll_delay

    def _poll_verdict(self) -> bool:
        """One GET of the run (any server version has it): take its latest verdict, and
        ask again while the last delivered epoch is not judged yet, soon after a poll that
        brought a newer verdict, backing off after one that did not. Whether the server
        answered with the run."""
        try:
            response = self._http.get(f"/api/runs/{self.run_id}", timeout=10.0)
            run = response.json() if response.is_success else None
        except (httpx.HTTPError, ValueError, RecursionError) as error:  # no run: no verdict
            run, response = None, None
            logger.debug("verdict poll failed: %s", error)
        if response is not None and response.status_code in (401, 403, 404, 405):
            logger.info("no verdict from %s (HTTP %d)", self.base_url, response.status_code)
            with self._cond:
                self._poll_at, self._poll_verdicts = None, False
            return False
        judged = run.get("last_epoch") if isinstance(run, dict) else None
        verdict = run.get("verdict") if isinstance(run, dict) else None
        newer = isinstance(judged, int) and judged > self._judged
        self._judged = max(self._judged, judged if isinstance(judged, int) else -1)
        if isinstance(judged, int) and isinstance(verdict, dict) and verdict.get("kind"):
            history = run.get("effective_rank_history") if isinstance(run, dict) else None
            self._take_verdict(judged, verdict, history if isinstance(history, list) else [])
        with self._cond:
            if self._delivered and (judged is None or judged < max(self._delivered)):
                delay = FIRST_VERDICT_POLL_S if newer else self._poll_delay * 2
                self._poll_delay = min(delay, MAX_VERDICT_POLL_S)
                self._poll_at = time.monotonic() + self._poll_delay
            else:
                self._poll_at = None
        return isinstance(run, dict)

    def _take_verdict(self, epoch: int, details: dict[str, Any], history: list[Any]) -> None:
        """The verdict of the run's last measured ``epoch``; ``history`` is the run's
        ``effective_rank_history`` (a value at each epoch the server measured), so that the
        collapse streak of a resumed run counts the epochs earlier processes logged."""
        onset = details.get("onset_epoch")
        verdict = Verdict(
            epoch=epoch,
            kind=str(details["kind"]),
            onset_epoch=onset if isinstance(onset, int) else None,
            reason=str(details.get("reason") or ""),
            details=details,
        )
        streak = 0
        if verdict.kind == COMPLETE_COLLAPSE:
            start = epoch if verdict.onset_epoch is None else verdict.onset_epoch
            measured = {e for e, rank in enumerate(history) if rank is not None}
            with self._cond:
                streak = sum(start <= e <= epoch for e in measured.union(self._delivered))
        self._judgement = (verdict, streak)

    def _write_local(self, item: _Item) -> bool:
        """Offline: the epoch (or the finish call) into the run directory, atomically."""
        assert self.run_dir is not None
        try:
            if item.epoch is None:
                with self._cond:
                    lists = {"epochs_dropped": self._not_on_the_server()}
                    lists["epochs_skipped"] = sorted(self._skipped)
                finish = {**(item.finish or {}), **lists}
                local.write_json(self.run_dir / local.FINISH_FILE, finish)
                self._finish_ok = True
                self._finished.set()
                return True
            path = local.epoch_path(self.run_dir, item.epoch)
            # the file another process with this resume key wrote first, or an older try's
            written = local.write_new(path, item.body)
            if not written and not wire.same_data(path.read_bytes(), item.body):
                self._held_with_other_data.add(item.epoch)
                self._last_error = f"epoch {item.epoch} is already in {path} with other data"
                self._warn(
                    "refused",
                    f"epoch {item.epoch} is already in {path} with other data (a job restarted "
                    "from an older checkpoint logs it again?): the stored epoch is kept"
                    + self._other_training_hint(item.epoch),
                )
                return False
        except OSError as error:
            self._gave_up(
                item,
                f"{type(error).__name__}: {error}",
                "local-write",
                f"could not write {_what(item)} to {self.run_dir}: {error}",
            )
            return False
        self._note_delivered(item.epoch)
        return True

    def _at_exit(self) -> None:
        if not self._closed:
            self.finish(
                timeout=EXIT_FLUSH_TIMEOUT_S,
                error="the process exited without calling Monitor.finish()",
            )


def _restarted() -> bool:
    """Whether the scheduler restarted this job: SLURM's requeue count, torchrun's restarts."""
    for name in ("SLURM_RESTART_COUNT", "TORCHELASTIC_RESTART_COUNT"):
        count = os.environ.get(name, "")
        if count.isdigit() and int(count) > 0:
            return True
    return False


def _positive_int(value: Any, default: int) -> int:
    """A limit from the server's reply, or ``default`` where the reply holds no such number."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return default


def _retry_after(response: httpx.Response) -> float | None:
    """Retry-After in seconds (the delay form; the date form is not worth parsing here)."""
    value = response.headers.get("retry-after", "")
    return min(float(value), MAX_BACKOFF_S * 6) if value.isdigit() else None


def _client_version() -> str:
    # imported here, not at the top: the package's __init__ imports this module first
    from . import __version__

    return __version__
