"""Fixtures for multi-replica tests: a real redis-server and three real replica processes."""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.postgres import postgres_database
from tests.support.redis_server import RedisServer

LOG_DIR = Path(os.environ.get("CRYPTO_TEST_LOGS") or tempfile.mkdtemp(prefix="crypto-replicas-"))


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.stop()


def start_replicas(env: dict[str, str], count: int, tag: str) -> list[ReplicaProcess]:
    replicas = [ReplicaProcess(f"{tag}-r{i}", env, LOG_DIR / f"{tag}-r{i}.log") for i in range(count)]
    for replica in replicas:
        replica.start()
    with ThreadPoolExecutor(count) as pool:
        list(pool.map(lambda r: r.wait_ready(), replicas))
    return replicas


def stop_replicas(replicas: list[ReplicaProcess]) -> None:
    for replica in replicas:
        replica.terminate()
    for replica in replicas:
        try:
            replica.wait_exit(15)
        except Exception:
            replica.kill()


@pytest.fixture(scope="module")
def cluster(redis_server: RedisServer) -> Iterator[list[ReplicaProcess]]:
    """Three replicas on the suite's database (SQLite file or TEST_DATABASE_URL)."""
    tag = uuid.uuid4().hex[:6]
    replicas = start_replicas(replica_env(redis_server.url, os.environ["DATABASE_URL"]), 3, tag)
    yield replicas
    stop_replicas(replicas)


@pytest.fixture(scope="module")
def pg_cluster(redis_server: RedisServer) -> Iterator[list[ReplicaProcess]]:
    """Three replicas on a fresh PostgreSQL database; skipped where no PostgreSQL answers."""
    with postgres_database() as url:
        tag = "pg" + uuid.uuid4().hex[:6]
        replicas = start_replicas(replica_env(redis_server.url, url, CRYPTO_REDIS_KEY_PREFIX=tag, CRYPTO_AUTH="off"), 3, tag)
        yield replicas
        stop_replicas(replicas)
