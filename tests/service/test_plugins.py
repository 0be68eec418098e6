"""Method plugins end to end: ``examples/wmse_plugin`` installed with ``pip install
--no-deps --target`` (the shared environment stays as it is; built offline by its locked
setuptools, ``--no-build-isolation --no-index``) is found by its entry point;
through the real stack it appears in ``GET /api/methods`` and its collapsing preset trains on
a worker to its verdict; a broken plugin is reported by name and takes nothing down; a run
of a method no connected worker has fails with that reason, and goes to the worker that has
it when there is one."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.service.stack import REPO, TINY_RUN, RedisServer, ServiceStack, wait_until

EXAMPLE = REPO / "examples" / "wmse_plugin"
BROKEN = "def broken(:\n"  # a plugin module that does not even parse


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("plugins")
    source = shutil.copytree(EXAMPLE, tmp_path_factory.mktemp("source") / "wmse_plugin")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),  # a copy: the build leaves build/ beside the sources
        ],
        check=True,
        timeout=300,
        cwd=target,
    )
    (target / "broken_plugin.py").write_text(BROKEN)
    return target


def _finished(client: httpx.Client, run_id: str) -> dict | None:
    run = client.get(f"/api/runs/{run_id}").json()
    return run if run["status"] in ("succeeded", "failed") else None


@pytest.mark.slow
def test_the_wmse_plugin_trains_through_the_stack(
    plugin_path: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    env = {"PYTHONPATH": f"{REPO}:{plugin_path}", "METHOD_PLUGINS": "broken_plugin"}
    service = ServiceStack(
        workdir=tmp_path,
        redis_url=redis_server.url.replace("/0", "/4"),
        database_url=f"sqlite:///{tmp_path / 'collapse_lab.db'}",
        extra_env=env,
    )
    try:
        service.start_api()
        catalogue = httpx.get(f"{service.base_url}/api/methods", timeout=10).json()
        wmse = next(m for m in catalogue["methods"] if m["name"] == "wmse")
        assert wmse["plugin"].startswith("wmse (entry point wmse_plugin.spec")
        assert "whitening" in wmse["options_schema"]["properties"]
        assert {"wmse", "wmse-no-whitening"} <= {p["name"] for p in catalogue["presets"]}
        [problem] = catalogue["plugin_errors"]
        assert problem["plugin"] == "broken_plugin" and "SyntaxError" in problem["error"]
        # a name that is not known may be the broken plugin's: the refusal names it
        unknown = httpx.post(f"{service.base_url}/api/runs", json={"preset": "bp"}, timeout=10)
        assert unknown.status_code == 422, unknown.text
        said = unknown.json()["detail"][0]["msg"]
        assert said.endswith("; plugin broken_plugin not loaded (" + problem["error"] + ")"), said

        service.start_worker("train-plugins", "train")
        service.wait_for_workers(train=1, timeout=180)
        with httpx.Client(base_url=service.base_url, timeout=30) as client:
            # the plugin's own defaults (batch 128, heads 512/128), a small probe and images
            small = {"train_size": 512, "probe_size": 256, "image_size": 16, "width": 8}
            run = client.post(
                "/api/runs", json={**small, "preset": "wmse-no-whitening", "epochs": 4}
            ).json()
            done = wait_until(lambda: _finished(client, run["id"]), 240, what="the W-MSE run")
            assert done["status"] == "succeeded", done["error"]
            epochs = client.get(f"/api/runs/{run['id']}/epochs").json()
            assert [r["epoch"] for r in epochs] == [0, 1, 2, 3, 4]
            assert 0 <= epochs[-1]["logs"]["unwhitened_mse"] <= 4
            assert done["verdict"]["kind"] == "complete_collapse", done["verdict"]
            workers = client.get("/api/health").json()["workers"]["items"]
            assert any("wmse" in (w.get("methods") or []) for w in workers)
    finally:
        service.stop()


def test_a_run_goes_to_the_worker_that_has_its_plugin(
    plugin_path: Path, redis_server: RedisServer, tmp_path: Path
) -> None:
    """The API knows the plugin, the worker does not (it runs without the package): with no
    other worker the run fails with that reason; once a worker with the plugin is connected,
    the bare worker hands it back and the run trains there."""
    service = ServiceStack(
        workdir=tmp_path,
        redis_url=redis_server.url.replace("/0", "/5"),
        database_url=f"sqlite:///{tmp_path / 'collapse_lab.db'}",
        extra_env={"PYTHONPATH": f"{REPO}:{plugin_path}"},
    )
    try:
        service.start_api()
        service.extra_env["PYTHONPATH"] = str(REPO)
        service.start_worker("train-bare", "train")
        service.wait_for_workers(train=1, timeout=180)
        with httpx.Client(base_url=service.base_url, timeout=30) as client:
            tiny = {k: v for k, v in TINY_RUN.items() if k not in ("method", "pred_hidden_dim")}
            # W-MSE whitens groups of more than proj_dim samples, within a batch of 32
            tiny |= {"proj_dim": 16, "options": {"whitening_size": 32}}
            run = client.post("/api/runs", json={**tiny, "method": "wmse"}).json()
            done = wait_until(lambda: _finished(client, run["id"]), 120, what="the failure")
        assert done["status"] == "failed"
        assert "method 'wmse' is not installed on worker" in done["error"]

        # a second worker with the plugin joins: the bare one, first in line for the
        # message, hands the run back instead of failing it, and the other one trains it
        service.extra_env["PYTHONPATH"] = f"{REPO}:{plugin_path}"
        service.start_worker("train-plugins", "train")
        service.wait_for_workers(train=2, timeout=180)
        with httpx.Client(base_url=service.base_url, timeout=30) as client:
            run = client.post("/api/runs", json={**tiny, "method": "wmse", "epochs": 1}).json()
            done = wait_until(lambda: _finished(client, run["id"]), 180, what="the W-MSE run")
        assert done["status"] == "succeeded", done["error"]
        assert done["worker_losses"] == 0
    finally:
        service.stop()


@pytest.mark.slow
def test_collapse_lab_train_finds_the_plugin_by_its_entry_point(
    plugin_path: Path, tmp_path: Path
) -> None:
    """No METHOD_PLUGINS: the installed package's entry point is enough for the CLI."""
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": f"{REPO}:{plugin_path}",
        "OMP_NUM_THREADS": "1",
        "DATA_DIR": str(tmp_path),
    }
    jsonl = tmp_path / "run.jsonl"
    command = [sys.executable, "-m", "workers.cli", "train", "--method", "wmse"]
    command += ["--epochs", "1", "--set", "train_size=256", "--set", "probe_size=128"]
    command += ["--set", "image_size=16", "--set", "width=8", "--set", "whitening=false"]
    command += ["--jsonl", str(jsonl)]
    result = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "wmse on digits" in result.stdout and "verdict:" in result.stdout
    records = [line for line in jsonl.read_text().splitlines() if line.strip()]
    assert len(records) == 3  # epochs 0 and 1, then the verdict
