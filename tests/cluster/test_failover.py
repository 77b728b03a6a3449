"""Owner crash, Redis restart and the cluster view, with real replica processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import grpc
from grpc_health.v1 import health_pb2

from apps.crypto.grpc.services.bus.keys import Keys
from tests.cluster.test_routing import connect, wait_routable
from tests.support.cluster import OPERATOR_TOKEN, ROOT, health_status
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, heartbeat
from tests.support.waiting import eventually

# How grpc.aio reports a replica killed under a stream: UNAVAILABLE ("Stream removed ... Connection reset
# by peer"), or INTERNAL ("Internal error from Core") when the bot's own write met the reset connection
# first. Which one is a race of the bot's writes with the kill; both mean "reconnect".
CRASH_ENDINGS = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL)


async def test_list_clients_shows_every_client_with_its_replica(cluster, redis_server):
    operator = Operator(OPERATOR_TOKEN)
    bots = [await connect(replica) for replica in cluster]
    try:
        for bot in bots:
            await wait_routable(operator, cluster[0].target, bot.client_id)

        def listed() -> dict[str, str]:
            env = {**os.environ, "REDIS_URL": redis_server.url}
            out = subprocess.run([sys.executable, "-W", "ignore", "manage.py", "list_clients", "--json"], cwd=ROOT,
                                 env=env, capture_output=True, text=True, check=True).stdout
            return {row["client_id"]: row["replica"] for row in map(json.loads, out.splitlines())}

        expected = {bot.client_id: replica.replica_id for bot, replica in zip(bots, cluster)}
        await eventually(lambda: expected.items() <= listed().items(), timeout=15, message="cluster view")
    finally:
        for bot in bots:
            await bot.__aexit__()
        await operator.close()


async def test_owner_killed_commands_fail_fast_or_follow_the_client(cluster, redis_server):
    """kill -9 of the owner: the stale claim is cleaned at once; a reconnect elsewhere gets the command."""
    operator = Operator(OPERATOR_TOKEN)
    victim = cluster[1]
    bot = await connect(victim)
    try:
        await wait_routable(operator, cluster[0].target, bot.client_id)
        victim.kill()
        assert await bot.ended() in CRASH_ENDINGS, bot.details
        execute = asyncio.create_task(operator.execute(cluster[0].target, bot.client_id, "after-kill", timeout=15))
        await eventually(lambda: redis_server.client().get(Keys().owner(bot.client_id)) is None,
                         timeout=3, message="stale claim cleaned")
        back = RawBot(cluster[2].target, bot.client_id, bot.api_key)
        await back.__aenter__()
        back.send(heartbeat(bot.client_id))
        ack = await execute
        assert ack.success and ack.command_id == "after-kill", ack.error
        owner = redis_server.client().get(Keys().owner(bot.client_id)).decode()
        assert owner.startswith(cluster[2].replica_id + "|")
        await back.__aexit__()
    finally:
        await bot.__aexit__()
        await operator.close()
        victim.start().wait_ready()


async def test_redis_restart_keeps_streams_and_recovers_routing(cluster, redis_server):
    operator = Operator(OPERATOR_TOKEN)
    bots = [await connect(replica) for replica in cluster]
    try:
        for bot in bots:
            await wait_routable(operator, cluster[0].target, bot.client_id)
        redis_server.stop()
        await eventually(lambda: all(health_status(r.target, "readiness") == health_pb2.HealthCheckResponse.NOT_SERVING
                                     for r in cluster), timeout=10, message="readiness drops")
        started = asyncio.get_running_loop().time()
        try:
            await operator.execute(cluster[0].target, bots[1].client_id, timeout=5)
            raise AssertionError("expected UNAVAILABLE while Redis is down")
        except grpc.aio.AioRpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAVAILABLE
        assert asyncio.get_running_loop().time() - started < 2.0
        assert all(not bot.task.done() for bot in bots), "streams must stay open during the outage"
        redis_server.start()
        for bot in bots:
            bot.send(heartbeat(bot.client_id))
            await wait_routable(operator, cluster[1].target, bot.client_id)
        for bot in bots:
            assert (await operator.execute(cluster[2].target, bot.client_id)).success
    finally:
        for bot in bots:
            await bot.__aexit__()
        await operator.close()
