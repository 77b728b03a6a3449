"""SIGTERM drain under continuous command traffic: every command ends acked or with an explicit error."""

from __future__ import annotations

import asyncio
import uuid

from apps.crypto.grpc.services.auth import create_client_key
from tests.cluster.test_routing import wait_routable
from tests.support.cluster import OPERATOR_TOKEN
from tests.support.fleet import CommandLoad, RoamingBot
from tests.support.operator import Operator


async def test_sigterm_drain_under_traffic_loses_no_command(cluster):
    operator = Operator(OPERATOR_TOKEN)
    targets = [r.target for r in cluster]
    bots = []
    for _ in range(6):
        client_id = f"fleet-{uuid.uuid4().hex[:8]}"
        bots.append(RoamingBot(targets, client_id, await create_client_key(client_id)))
    for bot in bots:
        bot.start()
    for bot in bots:
        await wait_routable(operator, targets[0], bot.client_id)
    load = CommandLoad(operator, [targets[0], targets[2]], [b.client_id for b in bots])
    stop = asyncio.Event()
    traffic = asyncio.create_task(load.run(stop))
    await asyncio.sleep(1.0)
    victim = cluster[1]
    victim.terminate()
    exit_code = await asyncio.to_thread(victim.wait_exit, 12)
    await asyncio.sleep(2.0)
    stop.set()
    await traffic
    for bot in bots:
        await bot.stop()
    await operator.close()
    victim.start().wait_ready()

    print("drain outcomes", dict(load.outcomes))
    assert exit_code == 0, victim.log_tail()
    assert not load.unexplained, (load.unexplained, load.outcomes)
    assert load.outcomes["acked"] > 20, load.outcomes
    received = {command_id for bot in bots for command_id in bot.received}
    assert set(load.acked) <= received, "an acked command never reached a bot"
    assert "drain.start" in victim.log_tail(200)
