"""Three real replica processes on a Redis Cluster or on Sentinel, chosen by REDIS_URL alone."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from tests.cluster.conftest import start_replicas, stop_replicas
from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.redis_topologies import RedisClusterSet, SentinelSet


@pytest.fixture(scope="module", params=["cluster", "sentinel"])
def topology(request) -> Iterator[RedisClusterSet | SentinelSet]:
    """Fresh per module and mode: the tests kill Redis nodes."""
    topology = RedisClusterSet() if request.param == "cluster" else SentinelSet()
    try:
        yield topology.start()
    finally:
        topology.stop()


@pytest.fixture(scope="module")
def replicas(topology) -> Iterator[list[ReplicaProcess]]:
    tag = f"{type(topology).__name__[:5].lower()}{uuid.uuid4().hex[:4]}"
    started = start_replicas(replica_env(topology.url, os.environ["DATABASE_URL"]), 3, tag)
    yield started
    stop_replicas(started)
