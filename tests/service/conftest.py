"""Fixtures: a private redis-server, and one service stack (uvicorn + a train worker + a
projection worker on a temporary SQLite file) shared by the tests of a session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.service.stack import RedisServer, ServiceStack, api_only_stack


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    service = ServiceStack(
        workdir=workdir,
        redis_url=redis_server.url,
        database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
    )
    service.start_api()
    service.start_worker("train1", "train")
    service.start_worker("projection1", "projection")
    # as `collapse-lab up` does: external runs' verdicts do not wait behind the UMAPs
    service.start_worker("ingest1", "ingest")
    service.wait_for_workers(train=1)
    yield service
    service.stop()


@pytest.fixture
def api(stack: ServiceStack) -> Iterator[httpx.Client]:
    """An HTTP client on the shared stack; makes sure a train worker is up first."""
    if not any(name.startswith("train") for name in stack.workers):
        stack.start_worker("train-replacement", "train")
        stack.wait_for_workers(train=1)
    with httpx.Client(base_url=stack.base_url, timeout=30) as client:
        yield client


@pytest.fixture(scope="session")
def private_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    """An API alone (no workers: runs stay queued) with API_TOKEN and private mode, on its
    own database and Redis database number."""
    workdir: Path = tmp_path_factory.mktemp("private")
    service = ServiceStack(
        workdir=workdir,
        redis_url=redis_server.url.replace("/0", "/1"),
        database_url=f"sqlite:///{workdir / 'collapse_lab.db'}",
        extra_env={"API_TOKEN": "s3cret-token", "PRIVATE": "true"},
    )
    service.start_api()
    yield service
    service.stop()


@pytest.fixture(scope="session")
def idle_stack(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceStack]:
    """An open API without workers on its own database (for request-level tests that must
    not start training)."""
    with api_only_stack(redis_server.url.replace("/0", "/2"), tmp_path_factory.mktemp("idle")) as s:
        yield s


PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    name = f"collapse_lab_test_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
    yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
