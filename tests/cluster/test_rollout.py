"""A rolling restart as the Deployment does it: start new, wait ready, SIGTERM old, respect the grace."""

from __future__ import annotations

import asyncio
import uuid

from apps.crypto.grpc.services.auth import create_client_key
from tests.cluster.conftest import LOG_DIR
from tests.cluster.test_routing import wait_routable
from tests.support.cluster import OPERATOR_TOKEN, ReplicaProcess, replica_env
from tests.support.fleet import CommandLoad, RoamingBot
from tests.support.operator import Operator

GRACE = 8.0  # GRPC_SHUTDOWN_GRACE in FAST_ENV


async def test_rolling_restart_strands_no_client_and_loses_no_command(redis_server):
    import os

    env = replica_env(redis_server.url, os.environ["DATABASE_URL"])
    tag = "roll" + uuid.uuid4().hex[:4]
    old = [ReplicaProcess(f"{tag}-old{i}", env, LOG_DIR / f"{tag}-old{i}.log").start() for i in range(3)]
    await asyncio.gather(*(asyncio.to_thread(r.wait_ready) for r in old))
    endpoints = [r.target for r in old]  # what the Service routes to: ready, not terminating
    operator = Operator(OPERATOR_TOKEN)
    bots = []
    for _ in range(9):
        client_id = f"roll-{uuid.uuid4().hex[:8]}"
        bots.append(RoamingBot(endpoints, client_id, await create_client_key(client_id)))
        bots[-1].start()
    for bot in bots:
        await wait_routable(operator, endpoints[0], bot.client_id)
    load = CommandLoad(operator, endpoints, [b.client_id for b in bots])
    stop = asyncio.Event()
    traffic = asyncio.create_task(load.run(stop))
    exits = []
    for i, victim in enumerate(old):
        fresh = ReplicaProcess(f"{tag}-new{i}", env, LOG_DIR / f"{tag}-new{i}.log").start()
        await asyncio.to_thread(fresh.wait_ready)
        endpoints.append(fresh.target)
        endpoints.remove(victim.target)
        victim.terminate()
        exits.append(await asyncio.to_thread(victim.wait_exit, GRACE + 2))
        old[i] = fresh
    await asyncio.sleep(1.5)
    stop.set()
    await traffic
    new_targets = set(endpoints)
    for bot in bots:  # every client ends connected, to a new replica
        await wait_routable(operator, endpoints[0], bot.client_id)
    for bot in bots:
        await bot.stop()
    await operator.close()
    for replica in old:
        replica.terminate()
    print("rollout outcomes", dict(load.outcomes))
    assert exits == [0, 0, 0]
    assert not load.unexplained, (load.unexplained, load.outcomes)
    assert load.outcomes["acked"] > 50, load.outcomes
    received = {command_id for bot in bots for command_id in bot.received}
    assert set(load.acked) <= received
    assert all(t in new_targets for t in endpoints)
