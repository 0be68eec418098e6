"""GPU workers on a CPU machine: one pinned worker per listed GPU, runs routed by device.

No CUDA is needed: ``collapse-lab worker --gpus 0,1`` checks the list against
``CUDA_VISIBLE_DEVICES`` (set to ``0,1`` here, as a scheduler sets it), so its children
declare a GPU (they consume ``train.gpu``) and carry ``CUDA_VISIBLE_DEVICES``; a run that
asks for ``cuda`` waits, with its reason, until such a worker joins, then is taken (and
fails here, honestly, for want of CUDA)."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.service.stack import (
    REPO,
    TINY_RUN,
    RedisServer,
    ServiceStack,
    api_only_stack,
    collect_until,
    descendants,
    wait_until,
)


@pytest.fixture(scope="module")
def gpu_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    with api_only_stack(redis_server.url.replace("/0", "/3"), tmp_path_factory.mktemp("gpu")) as s:
        yield s


def environment_of(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_a_cuda_run_waits_for_a_gpu_worker_and_each_worker_is_pinned_to_its_card(
    gpu_stack: ServiceStack,
) -> None:
    with httpx.Client(base_url=gpu_stack.base_url, timeout=30) as client:
        run = client.post("/api/runs", json={**TINY_RUN, "device": "cuda"}).json()
        assert run["status"] == "queued"
        waiting = collect_until(
            client,
            f"/api/runs/{run['id']}/events",
            stop=lambda e: e.event == "status" and "GPU worker" in (e.data["reason"] or ""),
            timeout=30,
        )
        assert waiting[-1].data["status"] == "queued"
        launcher = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "--gpus", "0,1"],
            cwd=REPO,
            env={**gpu_stack.env(), "CUDA_VISIBLE_DEVICES": "0,1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:

            def gpu_workers() -> list[dict]:
                workers = client.get("/api/health").json()["workers"]
                items = [w for w in workers["items"] if "train.gpu" in w["queues"]]
                return items if len(items) == 2 else []

            workers = wait_until(gpu_workers, timeout=90, what="two GPU workers")
            assert sorted(w["device"]["visible_devices"] for w in workers) == ["0", "1"]
            assert all("train.cpu" not in w["queues"] for w in workers)
            pinned = sorted(
                environment_of(child).get("CUDA_VISIBLE_DEVICES", "-")
                for child in descendants(launcher.pid)
            )
            assert pinned == ["0", "1"]
            # taken by a GPU worker; without CUDA on this machine it then fails and says so
            final = wait_until(
                lambda: (
                    (r := client.get(f"/api/runs/{run['id']}").json())["status"]
                    in ("failed", "succeeded")
                    and r
                ),
                timeout=90,
                what="the cuda run to be taken",
            )
            assert final["status"] == "failed" and "CUDA is not available" in final["error"]
        finally:
            launcher.send_signal(signal.SIGTERM)
            output = launcher.communicate(timeout=60)[0].decode()
        assert "started gpu0@" in output and "on GPU 0" in output
        assert launcher.returncode == 0
