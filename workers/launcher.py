"""``collapse-lab up``: Redis, the workers and the API on this machine, stopped by Ctrl-C.

1. Redis: uses ``REDIS_URL`` when it answers; otherwise, for a local URL, starts
   ``redis-server`` on that port (data in ``DATA_DIR/redis``), installing Debian's package
   first when it is missing and we are root; otherwise it says what to install. A Redis
   that another deployment's ``up`` started stops with that ``up``, so it is not used: this
   deployment then starts its own on a free port, and its workers and API use that one.
2. Migrates the database (``DATABASE_URL``, default SQLite file in ``DATA_DIR``), before
   anything starts: a database it cannot use is refused in one line.
3. Starts the workers: on a GPU host one training worker per GPU (``--gpus``, default all,
   each pinned to its card by ``CUDA_VISIBLE_DEVICES``), otherwise ``--train-workers``
   (default 1) CPU training workers; one for the ``projection`` queue, so UMAP never waits
   for, nor delays, training; and one for the ``ingest`` queue alone, so an external run's
   epoch is measured (its verdict, a client's stop on collapse) without waiting for the
   projections queued before it (the projection worker takes ingest tasks too).
4. Starts the API (uvicorn) on ``--host``/``--port`` (``API_HOST``/``API_PORT``, default
   127.0.0.1:8000; passed on to the API, whose alerts link to that address unless
   ``PUBLIC_URL`` is set) and prints the dashboard URL.

Every process gets the data directory of ``--data-dir`` (default ``DATA_DIR``) and the Redis
chosen in 1. One ``up`` holds a data directory at a time (a lock file in it): a second is
refused, whichever Redis either uses.

Ctrl-C (or SIGTERM) stops the API and the workers (a worker puts its unfinished run back in
the queue, to resume from its checkpoint next time), then the Redis it started.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import httpx
import redis
import sqlalchemy.exc
from sqlalchemy.engine import make_url

from backend.broker import INGEST_QUEUE, PROJECTION_QUEUE, training_queues
from backend.settings import Settings, get_settings, with_env_file
from backend.store.database import Database

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", ""}
REPO_ROOT = Path(__file__).resolve().parent.parent


class UpError(Exception):
    """Something the user must fix; printed as one message."""


UP_LOCK = ".collapse-lab-up.lock"  # in the data directory, held while its `up` runs


def hold_data_dir(data_dir: Path) -> int:
    """Create ``data_dir`` and lock it for this ``up`` (the lock goes with the process,
    however it ends); UpError when it cannot be created or another ``up`` holds it."""
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(data_dir / UP_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise UpError(
            f"cannot use the data directory {data_dir} ({exc.strerror}): give --data-dir "
            "(or DATA_DIR) a folder this user may write"
        ) from None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(descriptor, 32, 0).decode(errors="replace").strip() or "?"
        os.close(descriptor)
        raise UpError(
            f"another `collapse-lab up` (pid {holder}) already runs with this data directory "
            f"({data_dir}): stop it first, or give this one another --data-dir"
        ) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, str(os.getpid()).encode(), 0)
    return descriptor


def check_database(url: str, *, migrate: bool) -> None:
    """Reach the database (and bring its schema up to date where ``migrate``); UpError
    naming the database (without its password) and what went wrong otherwise."""
    try:
        shown = shown_url(url)
    except sqlalchemy.exc.ArgumentError:
        raise UpError(
            "DATABASE_URL is not a database URL (e.g. postgresql+psycopg://user@host/db)"
        ) from None
    try:
        database = Database(url)
        try:
            if migrate:
                database.migrate()
            else:
                database.ping()
        finally:
            database.dispose()
    except ImportError as exc:  # a database whose driver is not installed (mysql://...)
        raise UpError(
            f"cannot use the database {shown}: its driver is not installed ({exc}): give "
            "DATABASE_URL a PostgreSQL (postgresql+psycopg://...) or SQLite (sqlite:///...) URL"
        ) from None
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise UpError(
            f"cannot use the database {shown}: {reason}: start or create it, or fix DATABASE_URL"
        ) from None


def shown_url(url: str) -> str:
    """``url`` as printed: its password hidden (SQLAlchemy's URL parser reads any
    ``scheme://user:password@host`` URL, Redis's included); ArgumentError if it is none."""
    return make_url(url).render_as_string(hide_password=True)


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def ensure_redis_server_binary() -> str:
    """Path of redis-server, installing Debian's package when missing and root."""
    found = shutil.which("redis-server")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("redis-server is missing: installing Debian's package (apt-get install redis-server)")
        environment = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=environment)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "redis-server"],
            check=True,
            env=environment,
        )
        found = shutil.which("redis-server")
        if found:
            return found
    raise UpError(
        "Redis is not running and redis-server is not installed. Install it with "
        "`sudo apt-get install redis-server` (Debian/Ubuntu) or point REDIS_URL at a Redis."
    )


# Where a Redis that ``collapse-lab up`` started records which deployment it belongs to: a
# hash (data_dir, pid) in database 0, whatever database REDIS_URL names, so that any other
# ``up`` or ``worker`` reaching that server can read it.
STARTED_BY_KEY = "collapse-lab:started-by-up"


@dataclass(frozen=True)
class RedisOwner:
    """The ``collapse-lab up`` that started a Redis: that Redis stops when it stops."""

    data_dir: Path
    pid: int


def _database_zero(url: str) -> redis.Redis:
    """A client of database 0 of the Redis server at ``url`` (where the marker is kept)."""
    parsed = urlparse(url)._replace(path="/0", query="")
    return redis.Redis.from_url(
        parsed.geturl(), socket_connect_timeout=1, socket_timeout=1, decode_responses=True
    )


def redis_owner(url: str) -> RedisOwner | None:
    """The ``up`` that started the Redis answering at ``url``; None for a Redis started in
    any other way (a system service, a container, a head node's), which outlives us all."""
    client = _database_zero(url)
    try:
        marker = client.hgetall(STARTED_BY_KEY)
    except (redis.RedisError, OSError):
        return None
    finally:
        client.close()
    data_dir = marker.get("data_dir")
    if not isinstance(data_dir, str):  # no marker: not started by an `up`
        return None
    return RedisOwner(Path(data_dir), int(marker.get("pid") or 0))


def free_local_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def check_port_free(host: str, port: int) -> None:
    """UpError when the API could not listen on ``host:port`` (something listens there, or
    ``host`` is no address of this machine): the API would fail to bind only after Redis and
    the workers had started, its reason lost among their messages."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
        raise UpError(
            f"--host {host!r} is no address to listen on ({reason}): give an address of this "
            "machine, e.g. 127.0.0.1 or 0.0.0.0"
        ) from None
    with socket.socket(family, kind) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UpError(
                    f"{host}:{port} is in use ({exc.strerror}): stop what listens there, or "
                    "give `collapse-lab up --port` another port"
                ) from None
            raise UpError(
                f"cannot listen on {host}:{port} ({exc.strerror}): give `collapse-lab up "
                "--host` an address of this machine and `--port` a port it may use"
            ) from None


def choose_redis(url: str, data_dir: Path) -> tuple[str, bool]:
    """The Redis URL this deployment uses, and whether ``up`` must start it.

    A Redis that answers is shared (each deployment's names carry its id), unless another
    deployment's ``up`` started it: it would vanish with that ``up``, so this deployment
    starts its own, on a free port."""
    if not redis_answers(url):
        return url, True
    owner = redis_owner(url)
    if owner is None:
        print(f"using Redis at {shown_url(url)}")
        return url, False
    if owner.data_dir == data_dir:
        raise UpError(
            f"another `collapse-lab up` (pid {owner.pid}) already runs with this data "
            f"directory ({data_dir}) and its Redis at {shown_url(url)}: stop it first, or give "
            "this one another --data-dir"
        )
    own = urlparse(url)._replace(netloc=f"127.0.0.1:{free_local_port()}").geturl()
    print(
        f"Redis at {shown_url(url)} was started by the `collapse-lab up` of {owner.data_dir} "
        f"(pid {owner.pid}) and stops with it: starting this deployment's own at {own}"
    )
    return own, True


def start_redis(url: str, data_dir: Path) -> subprocess.Popen[bytes]:
    """redis-server on the port of ``url``, its data in ``data_dir/redis``, marked as this
    ``up``'s (:data:`STARTED_BY_KEY`)."""
    parsed = urlparse(url)
    if parsed.hostname not in LOCAL_HOSTS:
        raise UpError(f"Redis at {shown_url(url)} does not answer; start it or fix REDIS_URL")
    binary = ensure_redis_server_binary()
    folder = data_dir / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    port = parsed.port or 6379
    print(f"starting redis-server on 127.0.0.1:{port} (data in {folder})")
    process = subprocess.Popen(
        [
            binary,
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--appendonly", "yes", "--save", ""),
        ],
        start_new_session=True,
        preexec_fn=dies_with_this_process(),
        stdout=subprocess.DEVNULL,
    )
    client = _database_zero(url)
    try:
        deadline = time.monotonic() + 15
        # the pid tells our redis-server from one that took the port meanwhile
        while not _served_by(client, process.pid):
            if process.poll() is not None or time.monotonic() > deadline:
                raise UpError(f"redis-server did not start on port {port} (is the port taken?)")
            time.sleep(0.2)
        client.hset(STARTED_BY_KEY, mapping={"data_dir": str(data_dir), "pid": os.getpid()})
    finally:
        client.close()
    return process


def _served_by(client: redis.Redis, pid: int) -> bool:
    """Whether the Redis ``client`` reaches is the process ``pid``."""
    try:
        return bool(client.info("server")["process_id"] == pid)
    except (redis.RedisError, OSError):
        return False


def die_with_parent(parent: int) -> None:
    """In a child of ``parent``, before exec: on Linux, get SIGTERM when ``collapse-lab up``
    itself dies, even by SIGKILL, so no worker or Redis outlives it. A parent that died
    between the fork and the prctl sends no signal any more: the child then exits at once
    (an API was found still serving an hour after a test had killed `up` while it started
    its services)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)


def dies_with_this_process() -> functools.partial[None]:
    """``preexec_fn`` for a child that must not outlive this process."""
    return functools.partial(die_with_parent, os.getpid())


def worker_command(role: str, name: str) -> list[str]:
    """The Celery worker of ``role``: "train" (a CPU training worker), "train-gpu" (a
    training worker on the one GPU its CUDA_VISIBLE_DEVICES shows), "projection" (UMAP, and
    external runs' uploads when no ingest worker is free) or "ingest" (uploads alone)."""
    queues = {
        "train": training_queues(has_gpu=False),
        "train-gpu": training_queues(has_gpu=True),
        "projection": [PROJECTION_QUEUE, INGEST_QUEUE],
        "ingest": [INGEST_QUEUE],
    }[role]
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.celery_app",
        "worker",
        "-Q",
        ",".join(queues),
        "--pool",
        "solo",
        "--concurrency",
        "1",
        "-n",
        f"{name}@%h",
        "--without-mingle",
        "--without-gossip",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
    ]


def api_command(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "backend.app:create_app",
        "--host",
        host,
        "--port",
        str(port),
        "--no-access-log",
    ]


def visible_gpus() -> list[str]:
    """Indices of this host's NVIDIA GPUs, read by ``nvidia-smi`` so that this process never
    initialises CUDA (its children are the ones that train); [] without a GPU."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [index for index in listed.split(",") if index.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


WorkerLaunch = tuple[str, list[str], dict[str, str]]


def training_workers(gpus: list[str], cpu_workers: int) -> list[WorkerLaunch]:
    """(name, command, extra environment) of each training worker: one per GPU, pinned to it
    with CUDA_VISIBLE_DEVICES, each taking one run at a time; or ``cpu_workers`` CPU workers."""
    if gpus:
        return [
            (
                f"gpu{index}",
                worker_command("train-gpu", f"gpu{index}"),
                {"CUDA_VISIBLE_DEVICES": index},
            )
            for index in gpus
        ]
    return [
        (f"train{n}", worker_command("train", f"train{n}"), {"CUDA_VISIBLE_DEVICES": ""})
        for n in range(1, cpu_workers + 1)
    ]


def helper_worker(role: str) -> WorkerLaunch:
    """The projection or ingest worker, named after its role."""
    return (role, worker_command(role, role), {})


def stop_all(processes: list[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM everyone, wait, then SIGKILL whoever is left."""
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            command = [str(part) for part in process.args]  # type: ignore[union-attr]
            print(f"{command[2:5]} did not stop within {timeout:.0f} s: killed", file=sys.stderr)
            process.kill()
            process.wait(5)


def stop_on_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM stop this launcher (its ``finally`` stops the children).

    SIGINT gets Python's handler even when it was inherited as ignored: a shell without job
    control starts background commands with SIGINT ignored, and Python then installs no
    handler, so `collapse-lab up` started from a script or CI never heard its Ctrl-C."""

    def request_stop(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, request_stop)


def spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """Start one service in its own session (Ctrl-C reaches only us) that dies with us."""
    return subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
        preexec_fn=dies_with_this_process(),
    )


# A service that exits more often than this within the window is in a crash loop (a broken
# install, a database it cannot reach): shown and stopped, not restarted for ever.
RESTARTS_PER_WINDOW = 3
RESTART_WINDOW_S = 60.0


@dataclass
class Service:
    """A process ``up`` or ``worker`` keeps running: one that exits (an OOM kill, a worker
    stopped by hand) is started again, its run requeued by the worker's own shutdown or by
    the reaper, and the rest of the stack, the API included, goes on serving."""

    name: str
    command: list[str]
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    exits: list[float] = field(default_factory=list)  # when it exited (time.monotonic)

    @classmethod
    def start(cls, name: str, command: list[str], env: dict[str, str]) -> Service:
        return cls(name, command, env, spawn(command, env))

    def restart_if_exited(self) -> None:
        """Start the process again if it exited; UpError when it keeps exiting."""
        status = self.process.poll()
        if status is None:
            return
        now = time.monotonic()
        self.exits = [t for t in self.exits if now - t < RESTART_WINDOW_S] + [now]
        if len(self.exits) > RESTARTS_PER_WINDOW:
            raise UpError(
                f"{self.name} exited {len(self.exits)} times within {RESTART_WINDOW_S:.0f} s "
                f"(last with status {status}): see its messages above"
            )
        print(f"{self.name} exited with status {status}: starting it again", file=sys.stderr)
        self.process = spawn(self.command, self.env)


def processes(services: list[Service]) -> list[subprocess.Popen[bytes]]:
    return [service.process for service in services]


def watch(services: list[Service]) -> NoReturn:
    """Keep ``services`` running until Ctrl-C (or UpError: one is in a crash loop)."""
    while True:
        for service in services:
            service.restart_if_exited()
        time.sleep(1)


DATA_DIR_HELP = "datasets, runs (checkpoints) and the default SQLite database (DATA_DIR)"
GPUS_HELP = "GPUs to start one training worker on each: all (every visible one), none, or 0,1,..."


def data_dir_path(text: str) -> Path:
    """``--data-dir``'s value: a folder, or a path where one can be made (no part of it a
    file); every command refuses anything else here, before it starts a thing."""
    path = Path(text)
    existing = next((p for p in (path, *path.parents) if p.exists() or p.is_symlink()), None)
    if existing is not None and not existing.is_dir():
        what = "exists" if existing == path else f"is inside {str(existing)!r}, which exists"
        raise argparse.ArgumentTypeError(  # DATA_DIR, when the flag is absent, is its value
            f"{text!r} {what} and is not a directory: give --data-dir (or DATA_DIR) a folder"
        )
    return path


def add_data_dir_argument(parser: argparse.ArgumentParser, after_subcommand: bool = False) -> None:
    """``--data-dir``, default DATA_DIR (else ./data), a directory or none yet. After a
    subcommand an absent flag keeps the value given before the subcommand
    (``argparse.SUPPRESS``)."""
    resolved = get_settings().resolved_data_dir
    parser.add_argument(
        "--data-dir",
        type=data_dir_path,
        # a str default goes through data_dir_path too: DATA_DIR is checked like the flag
        default=argparse.SUPPRESS if after_subcommand else str(resolved),
        # "%(default)" in the help: ArgumentDefaultsHelpFormatter adds no second default
        help=f"{DATA_DIR_HELP} (default: {resolved if after_subcommand else '%(default)s'})",
    )


def port_number(text: str) -> int:
    """``--port``: a TCP port, 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number (1 to 65535)")
    return port


def worker_count(text: str) -> int:
    """A number of worker processes: a whole number, 0 or more."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"{count}: give 0 or more")
    return count


def add_up_arguments(parser: argparse.ArgumentParser) -> None:
    """``collapse-lab up``'s options (the command line lists them in its --help)."""
    settings = get_settings()
    parser.add_argument("--host", default=settings.api_host, help="API address (API_HOST)")
    parser.add_argument(
        "--port", type=port_number, default=settings.api_port, help="API port (API_PORT)"
    )
    parser.add_argument(
        "--train-workers",
        type=worker_count,
        default=1,
        help="CPU training worker processes on a host without a GPU",
    )
    parser.add_argument("--gpus", type=gpu_list, default="all", help=GPUS_HELP)


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """``collapse-lab worker``'s options."""
    parser.add_argument("--gpus", type=gpu_list, default="all", help=GPUS_HELP)
    parser.add_argument(
        "--cpu-workers",
        type=worker_count,
        default=1,
        help="CPU training workers on a host without a GPU",
    )
    parser.add_argument("--projection", action="store_true", help="also a projection worker")


def gpu_list(value: str) -> list[str] | None:
    """argparse type of ``--gpus``: None for "all" (every visible GPU), [] for "none", else
    the comma-separated indices; a value of another shape is a usage error (exit status 2)."""
    if value == "all":
        return None
    if value == "none":
        return []
    indices = [index.strip() for index in value.split(",")]  # '0,,1': refused, not read as 0,1
    if not all(index.isdigit() for index in indices):
        raise argparse.ArgumentTypeError(f"{value!r}: give all, none or GPU indices such as 0,1")
    if len(set(indices)) != len(indices):
        raise argparse.ArgumentTypeError(f"{value!r}: a GPU is listed twice")
    return indices


def resolve_gpus(requested: list[str] | None) -> list[str]:
    """The GPUs to start a worker on: ``requested`` (:func:`gpu_list`), each one this host
    has (:func:`visible_gpus`: CUDA_VISIBLE_DEVICES when set), or every visible one."""
    if requested is None:
        return visible_gpus()
    present = visible_gpus()
    missing = [index for index in requested if index not in present]
    if missing:
        has = f"GPUs {', '.join(present)}" if present else "no GPU"
        listed = os.environ.get("CUDA_VISIBLE_DEVICES")
        if listed is not None:
            source = f"CUDA_VISIBLE_DEVICES={listed!r}"
        elif shutil.which("nvidia-smi") is None:
            source = "nvidia-smi is not installed"
        else:
            source = "as nvidia-smi lists them"
        raise UpError(
            f"--gpus {','.join(requested)}: no GPU {', '.join(missing)} on this host, which has "
            f"{has} ({source})"
        )
    return requested


def service_environment(settings: Settings) -> dict[str, str]:
    """The environment of the processes ``up`` and ``worker`` start, in the repository: the
    launcher's settings (its .env included: :func:`with_env_file`) with the paths it read
    relative to its own directory made absolute, its Redis, and the API's address (alerts
    link to API_HOST:API_PORT, unless PUBLIC_URL)."""
    return {
        **with_env_file(os.environ),
        "DATA_DIR": str(settings.resolved_data_dir),
        "DATABASE_URL": settings.resolved_database_url,
        "FRONTEND_DIR": str(settings.frontend_dir.expanduser().resolve()),
        "REDIS_URL": settings.redis_url,
        "API_HOST": settings.api_host,
        "API_PORT": str(settings.api_port),
    }


def api_plugin_errors(url: str, token: str | None) -> list[str]:
    """The plugins the API could not load, as ``GET /api/methods`` lists them (it read
    METHOD_PLUGINS and the entry points in its own environment); none when it cannot be
    asked or answers otherwise (the banner comes anyway)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        catalogue = httpx.get(f"{url}api/methods", headers=headers, timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return []
    problems = catalogue.get("plugin_errors") if isinstance(catalogue, dict) else None
    return [
        f"plugin {problem.get('plugin')} not loaded ({problem.get('error')}): its methods, "
        "presets and datasets are left out"
        for problem in (problems if isinstance(problems, list) else [])
        if isinstance(problem, dict)
    ]


def up(args: argparse.Namespace) -> int:
    """Run the stack until Ctrl-C; returns the exit status."""
    # --data-dir in place of DATA_DIR: the default SQLite file moves with it
    settings = get_settings().model_copy(update={"data_dir": args.data_dir})
    data_dir = settings.resolved_data_dir
    try:  # what the user must fix is refused before anything starts
        gpus = resolve_gpus(args.gpus)
        check_port_free(args.host, args.port)
        lock = hold_data_dir(data_dir)
    except UpError as exc:
        print(f"collapse-lab up: error: {exc}", file=sys.stderr)
        return 1
    try:
        check_database(settings.resolved_database_url, migrate=True)
    except UpError as exc:
        os.close(lock)
        print(f"collapse-lab up: error: {exc}", file=sys.stderr)
        return 1
    redis_process: subprocess.Popen[bytes] | None = None
    services: list[Service] = []
    stopping = False
    stop_on_signals()
    try:
        redis_url, must_start = choose_redis(settings.redis_url, data_dir)
        if must_start:
            redis_process = start_redis(redis_url, data_dir)
        serving = {"redis_url": redis_url, "api_host": args.host, "api_port": args.port}
        environment = service_environment(settings.model_copy(update=serving))
        launches = [
            *training_workers(gpus, args.train_workers),
            *(helper_worker(role) for role in ("projection", "ingest")),
            ("api", api_command(args.host, args.port), {}),
        ]
        for name, command, extra_env in launches:
            services.append(Service.start(name, command, {**environment, **extra_env}))
        shown_host = "127.0.0.1" if args.host in ("0.0.0.0", "::") else args.host
        url = f"http://{shown_host}:{args.port}/"
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            started = processes(services)
            if any(p.poll() is not None for p in started) or time.monotonic() > deadline:
                raise UpError("the API did not come up; see the messages above")
            time.sleep(0.5)
        for problem in api_plugin_errors(url, settings.api_token):
            print(f"collapse-lab up: warning: {problem}", file=sys.stderr)
        print(f"\nCollapse Lab is up: {url}  (API docs: {url}docs). Press Ctrl-C to stop.\n")
        sys.stdout.flush()
        watch(services)
    except KeyboardInterrupt:
        stopping = True
        print("\nstopping Collapse Lab...")
        return 0
    except UpError as exc:
        print(f"collapse-lab up: error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(processes(services))
        if redis_process is not None:
            stop_all([redis_process], timeout=10)
        os.close(lock)  # the data directory is free for the next `up`
        if stopping:
            print("stopped.")


def worker(args: argparse.Namespace) -> int:
    """``collapse-lab worker``: this host's training workers (one per GPU, or CPU workers) and
    optionally a projection worker, joined to REDIS_URL and DATABASE_URL; until Ctrl-C."""
    # A worker on another machine joins the Redis of the head's `up` with a data directory
    # of its own: whose `up` started that Redis is no reason to refuse it.
    data_dir = args.data_dir.expanduser().resolve()
    settings = get_settings().model_copy(update={"data_dir": data_dir})
    environment = service_environment(settings)
    try:  # what the user must fix is refused before anything starts
        workers = training_workers(resolve_gpus(args.gpus), args.cpu_workers)
        if args.projection:
            workers.append(helper_worker("projection"))
        if not workers:
            raise UpError(
                "nothing to start: no GPU (--gpus), no CPU training worker (--cpu-workers 0) "
                "and no --projection"
            )
        # the workers store every epoch there: an unreachable one is said now, in one line
        check_database(settings.resolved_database_url, migrate=False)
        if not redis_answers(settings.redis_url):  # else Celery retries it for minutes
            raise UpError(
                f"cannot reach Redis at {shown_url(settings.redis_url)}: start it (on the "
                "head node `collapse-lab up` does), or fix REDIS_URL"
            )
    except UpError as exc:
        print(f"collapse-lab worker: error: {exc}", file=sys.stderr)
        return 1
    services: list[Service] = []
    stop_on_signals()
    try:
        for name, command, extra_env in workers:
            services.append(Service.start(name, command, {**environment, **extra_env}))
            # Celery names it name@%h, %h this host's name
            shown = f"{name}@{socket.gethostname()}"
            pinned = extra_env.get("CUDA_VISIBLE_DEVICES")
            print(f"started {shown} on GPU {pinned}" if pinned else f"started {shown}")
        sys.stdout.flush()
        watch(services)
    except KeyboardInterrupt:
        return 0
    except UpError as exc:
        print(f"collapse-lab worker: error: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stop_all(processes(services))


def main(argv: list[str] | None = None) -> int:
    """``python -m workers.launcher [options]``: ``collapse-lab up`` without the command line."""
    parser = argparse.ArgumentParser(
        prog="collapse-lab up",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_up_arguments(parser)
    add_data_dir_argument(parser)
    return up(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
