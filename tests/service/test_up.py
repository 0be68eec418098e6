"""``collapse-lab up`` starts its own Redis, the workers and the API, and Ctrl-C stops them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.service.stack import FAST_TIMEOUTS, REPO, descendants, free_port, wait_until

API_TOKEN = "from-the-dot-env"


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return (
        Path(f"/proc/{pid}/stat").exists()
        and "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    )


def worker_pid(pids: set[int], name: str) -> int | None:
    """The pid among ``pids`` of the Celery worker named ``name`` (``-n train1@%h``)."""
    for pid in pids:
        try:
            command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.decode(errors="replace").startswith(name) for part in command):
            return pid
    return None


def test_up_starts_everything_and_ctrl_c_stops_it(tmp_path: Path) -> None:
    """Configured by a .env beside the command, as the README allows: the API and the
    workers it starts (in the repository) read the same settings, the token included."""
    redis_port, api_port = free_port(), free_port()
    (tmp_path / ".env").write_text(
        f"REDIS_URL=redis://127.0.0.1:{redis_port}/0\n"
        "DATA_DIR=data\n"  # relative: to the directory of the command
        f"API_PORT={api_port}\n"
        f"API_TOKEN={API_TOKEN}\n"
    )
    # METHOD_PLUGINS is read from the environment only (README, "Configuration")
    env = {**os.environ, **FAST_TIMEOUTS, "METHOD_PLUGINS": "no_such_plugin_module"}
    configured_here = ("DATABASE_URL", "REDIS_URL", "DATA_DIR", "API_PORT", "API_TOKEN")
    for configured in configured_here:
        env.pop(configured, None)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher"], cwd=tmp_path, env=env, stdout=log, stderr=log
    )
    try:
        base = f"http://127.0.0.1:{api_port}"

        def workers_ready() -> bool:
            health = httpx.get(f"{base}/api/health", timeout=2).json()
            workers = health["workers"]
            # the projection worker and one for external runs' uploads alone
            return (
                health["status"] == "ok" and workers["projection"] == 1 and workers["ingest"] == 2
            )

        wait_until(workers_ready, 120, what="collapse-lab up")
        assert httpx.get(f"{base}/api/health", timeout=5).json()["auth"]["write_protected"]
        refused = httpx.post(f"{base}/api/runs", json={"method": "simsiam"}, timeout=5)
        assert refused.status_code == 401, refused.text
        banner = f"Collapse Lab is up: {base}/"
        wait_until(lambda: banner in (tmp_path / "up.log").read_text(), 30, what="the banner")
        # the API could not load the plugin: said before the banner
        said = "collapse-lab up: warning: plugin no_such_plugin_module not loaded ("
        up_log = (tmp_path / "up.log").read_text()
        assert said in up_log and up_log.index(said) < up_log.index(banner), up_log[-2000:]
        assert (tmp_path / "data" / "collapse_lab.db").exists(), "SQLite file in DATA_DIR"
        children = descendants(up.pid)
        assert len(children) >= 5  # redis-server, 3 workers, uvicorn

        # a training worker killed (the OOM killer, a kill by hand) is started again, and
        # the API goes on serving meanwhile
        killed = worker_pid(children, "train1@")
        os.kill(killed, signal.SIGKILL)
        restarted = "train1 exited with status -9: starting it again"
        wait_until(lambda: restarted in (tmp_path / "up.log").read_text(), 10, what="a restart")
        assert httpx.get(f"{base}/api/health", timeout=5).status_code == 200
        wait_until(
            lambda: worker_pid(descendants(up.pid), "train1@") not in (None, killed),
            30,
            what="the new training worker",
        )
        children = descendants(up.pid)

        started = time.monotonic()
        up.send_signal(signal.SIGINT)
        try:
            assert up.wait(60) == 0
        except subprocess.TimeoutExpired:
            pytest.fail(
                "up still running 60 s after Ctrl-C:\n" + (tmp_path / "up.log").read_text()[-3000:]
            )
        assert time.monotonic() - started < 60
        wait_until(lambda: not any(alive(p) for p in children), 10, what="children to exit")
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/api/health", timeout=2)
    finally:
        if up.poll() is None:
            up.kill()  # its children get SIGTERM from the kernel (PR_SET_PDEATHSIG)


def test_children_do_not_outlive_a_killed_up(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **FAST_TIMEOUTS,
        "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",
        "DATA_DIR": str(tmp_path / "data"),
        "API_PORT": str(free_port()),
    }
    env.pop("DATABASE_URL", None)
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "workers.launcher"], cwd=REPO, env=env, stdout=log, stderr=log
    )
    wait_until(lambda: len(descendants(up.pid)) >= 4, 120, what="the services to start")
    children = descendants(up.pid)
    up.kill()
    up.wait(10)
    wait_until(lambda: not any(alive(p) for p in children), 30, what="orphans to exit")


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        redis_port = free_port()
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0"}
        env.pop("DATABASE_URL", None)
        command = ["up", "--port", str(port), "--train-workers", "0", "--gpus", "none"]
        done = subprocess.run(
            [sys.executable, "-m", "workers.cli", "--data-dir", str(tmp_path), *command],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"127.0.0.1:{port} is in use" in done.stderr and "--port" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "redis").exists()  # no Redis was started for it
    with socket.socket() as probe:  # nor left listening
        assert probe.connect_ex(("127.0.0.1", redis_port)) != 0
