"""Fixtures for tests/bus: real Redis Cluster and Sentinel topologies (see tests/support/redis_topologies.py)."""

from tests.support.redis_topologies import redis_cluster, redis_sentinel  # noqa: F401
