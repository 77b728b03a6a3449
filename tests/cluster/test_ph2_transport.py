"""The opt-in memory-lean transport (GRPC_EXPERIMENTS=ph2_server) on real replica processes.

Why a test: the experiment is gRPC core's, not ours; a grpcio upgrade may change or drop it. These
tests fail when it is no longer known to gRPC, or when streams, cross-replica commands and the
SIGTERM drain stop working under it.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import grpc
import pytest

from tests.cluster.conftest import start_replicas, stop_replicas
from tests.cluster.test_routing import check_every_replica_reaches_every_client, connect, wait_routable
from tests.support.cluster import OPERATOR_TOKEN, ReplicaProcess, replica_env
from tests.support.operator import Operator
from tests.support.redis_server import RedisServer

PH2 = "ph2_server"


@pytest.fixture(scope="module")
def ph2_cluster(redis_server: RedisServer) -> Iterator[list[ReplicaProcess]]:
    tag = "ph2" + uuid.uuid4().hex[:6]
    env = replica_env(redis_server.url, os.environ["DATABASE_URL"], GRPC_EXPERIMENTS=PH2,
                      CRYPTO_REDIS_KEY_PREFIX=tag)
    replicas = start_replicas(env, 2, tag)
    yield replicas
    stop_replicas(replicas)


def test_replicas_run_with_the_experiment_known_to_grpc(ph2_cluster):
    for replica in ph2_cluster:
        log = replica.log_tail(400)
        assert f"grpc_experiments={PH2}" in log, log
        assert "Unknown experiment" not in log, log


async def test_commands_cross_replicas_and_are_acked(ph2_cluster):
    await check_every_replica_reaches_every_client(ph2_cluster)


async def test_sigterm_drain_ends_streams_with_unavailable(ph2_cluster):
    victim = ph2_cluster[1]
    bot = await connect(victim)
    operator = Operator(OPERATOR_TOKEN)
    try:
        await wait_routable(operator, ph2_cluster[0].target, bot.client_id)
        victim.terminate()
        assert await bot.ended(10) == grpc.StatusCode.UNAVAILABLE and "draining" in bot.details, bot.details
        assert await asyncio.to_thread(victim.wait_exit, 15) == 0, victim.log_tail()
    finally:
        await bot.__aexit__()
        await operator.close()
        victim.start().wait_ready()
