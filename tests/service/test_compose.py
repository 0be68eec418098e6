"""docker-compose.yml and the Dockerfile, checked for structure (Docker cannot run here)."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.service.stack import REPO


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def test_every_service_is_there_with_a_health_check(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"api", "worker", "projector", "redis", "postgres"} <= set(services)
    for name in ("api", "worker", "projector", "redis", "postgres"):
        check = services[name]["healthcheck"]["test"]
        assert check[0] in ("CMD", "CMD-SHELL") and len(check) >= 2, name


def test_workers_reserve_the_gpu_and_consume_their_queues(compose: dict[str, Any]) -> None:
    worker = compose["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices)
    # one worker per GPU inside the container, each pinned to its card (not `--scale`)
    assert worker["command"] == ["collapse-lab", "worker", "--gpus", "all"]
    command = compose["services"]["worker-cpu"]["command"]
    assert command[command.index("-Q") + 1] == "train.cpu,train"
    assert command[command.index("--pool") + 1] == "solo"
    projector = compose["services"]["projector"]["command"]
    assert projector[projector.index("-Q") + 1] == "projection,ingest"
    assert "deploy" not in compose["services"]["worker-cpu"]


def test_app_services_share_redis_postgres_and_the_data_volume(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("api", "worker", "projector"):
        service = services[name]
        env = service["environment"]
        assert env["DATABASE_URL"].startswith("postgresql+psycopg://")
        assert env["DATABASE_URL"].endswith("@postgres:5432/collapse_lab")
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["DATA_DIR"] == "/data" and "data:/data" in service["volumes"]
        for dependency in ("redis", "postgres"):
            assert service["depends_on"][dependency]["condition"] == "service_healthy"
    assert services["api"]["ports"] == ["${API_PORT:-8000}:8000"]
    assert set(compose["volumes"]) == {"data", "redis", "postgres"}
    assert "redis:/data" in services["redis"]["volumes"]
    assert "postgres:/var/lib/postgresql/data" in services["postgres"]["volumes"]


def test_the_dockerfile_installs_the_package_and_serves_the_api() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --no-deps --no-build-isolation ./client ." in dockerfile
    assert "COPY frontend ./frontend" in dockerfile and "FRONTEND_DIR=/app/frontend" in dockerfile
    assert '"backend.app:create_app"' in dockerfile and "EXPOSE 8000" in dockerfile


def test_the_api_image_is_built_without_torch(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["api"]["build"]["target"] == "api"
    for name in ("worker", "worker-cpu", "projector"):
        assert services[name]["build"]["target"] == "worker", name
    dockerfile = (REPO / "Dockerfile").read_text()
    api_stage = dockerfile.split("AS api", 1)[1]
    assert "[worker]" not in api_stage
    # each installs its subset of the lock (tests/test_lock.py: the api's is torch-free), then
    # both packages without dependencies: the server decodes uploads with collapse_lab.wire
    assert "pip install --require-hashes -r requirements/api.txt" in api_stage
    assert "pip install --no-deps --no-build-isolation ./client ." in api_stage
    worker_stage = dockerfile.split("AS worker", 1)[1].split("FROM", 1)[0]
    assert "pip install --require-hashes -r requirements/worker.txt" in worker_stage
    assert "pip install --no-deps --no-build-isolation ./client '.[worker]'" in worker_stage


def test_workers_keep_the_compiled_umap_kernels_on_the_data_volume(
    compose: dict[str, Any],
) -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    worker_stage = dockerfile.split("AS worker", 1)[1].split("FROM", 1)[0]
    cache = worker_stage.split("ENV NUMBA_CACHE_DIR=", 1)[1].split()[0]
    data_dir = dockerfile.split('VOLUME ["', 1)[1].split('"', 1)[0]
    assert cache.startswith(data_dir + "/")
    # the projector mounts that volume, so its kernels outlive the container
    assert any(v.endswith(f":{data_dir}") for v in compose["services"]["projector"]["volumes"])
