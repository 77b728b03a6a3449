"""Any replica reaches any client; acks return to the replica that was asked."""

from __future__ import annotations

import asyncio
import itertools
import uuid

import grpc
import pytest

from apps.crypto.grpc.services.auth import create_client_key
from tests.support.cluster import OPERATOR_TOKEN
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, heartbeat
from tests.support.waiting import eventually


async def connect(replica, client_id: str | None = None, key: bool | str = True, **kwargs) -> RawBot:
    client_id = client_id or f"bot-{uuid.uuid4().hex[:10]}"
    api_key = key if isinstance(key, str) else (await create_client_key(client_id) if key else "")
    bot = RawBot(replica.target, client_id, api_key, **kwargs)
    await bot.__aenter__()
    bot.send(heartbeat(client_id))
    return bot


async def wait_routable(operator: Operator, target: str, client_id: str) -> None:
    """The claim is in Redis once any replica can deliver to the client."""
    async def routable() -> bool:
        return (await operator.send(target, client_id, timeout=5)).success
    await eventually(routable, timeout=15, message=f"{client_id} routable")


async def check_every_replica_reaches_every_client(replicas) -> None:
    """One bot per replica; every replica sends every bot a command and gets the bot's own ack back."""
    operator = Operator(OPERATOR_TOKEN)
    bots = [await connect(replica) for replica in replicas]
    try:
        for bot in bots:
            await wait_routable(operator, replicas[0].target, bot.client_id)
        for replica, bot in itertools.product(replicas, bots):
            command_id = f"{replica.replica_id}-{bot.client_id}"
            ack = await operator.execute(replica.target, bot.client_id, command_id)
            assert ack.success, (replica.replica_id, bot.client_id, ack.error)
            assert ack.command_id == command_id and ack.message == "done"
    finally:
        for bot in bots:
            await bot.__aexit__()
        await operator.close()


async def test_every_replica_reaches_every_client(cluster):
    await check_every_replica_reaches_every_client(cluster)


async def test_send_to_unknown_client_fails_at_once_from_any_replica(cluster):
    operator = Operator(OPERATOR_TOKEN)
    try:
        for replica in cluster:
            started = asyncio.get_running_loop().time()
            response = await operator.send(replica.target, "never-connected-" + uuid.uuid4().hex[:6])
            assert not response.success and "not connected" in response.error
            assert asyncio.get_running_loop().time() - started < 1.0
    finally:
        await operator.close()


async def test_takeover_across_replicas_moves_the_client(cluster):
    operator = Operator(OPERATOR_TOKEN)
    old = await connect(cluster[1])
    try:
        await wait_routable(operator, cluster[0].target, old.client_id)
        new = RawBot(cluster[2].target, old.client_id, old.api_key)
        await new.__aenter__()
        new.send(heartbeat(old.client_id))
        assert await old.ended() == grpc.StatusCode.ABORTED
        for replica in cluster:
            ack = await operator.execute(replica.target, old.client_id)
            assert ack.success, ack.error
        assert len(new.commands) == 3 and all(c.pause.reason == "t" for c in new.commands)
        await new.__aexit__()
    finally:
        await old.__aexit__()
        await operator.close()


async def leave_briefly(operator: Operator, cluster) -> RawBot:
    """A bot that was routable on replica 0 and then ended its stream normally."""
    bot = await connect(cluster[0])
    await wait_routable(operator, cluster[1].target, bot.client_id)
    bot.close_sending()
    await bot.ended()
    await bot.__aexit__()
    return bot


async def test_commands_held_during_a_short_disconnect_arrive_in_order(cluster):
    operator = Operator(OPERATOR_TOKEN)
    bot = await leave_briefly(operator, cluster)
    sends = [asyncio.create_task(operator.send(cluster[1].target, bot.client_id, f"held-{i}"))
             for i in range(3)]
    await asyncio.sleep(0.3)
    back = RawBot(cluster[2].target, bot.client_id, bot.api_key, auto_ack=False)
    await back.__aenter__()
    back.send(heartbeat(bot.client_id))
    try:
        results = await asyncio.gather(*sends)
        assert all(r.success for r in results), [r.error for r in results]
        commands = await back.wait_commands(3)
        assert sorted(c.command_id for c in commands) == ["held-0", "held-1", "held-2"]
    finally:
        await back.__aexit__()
        await operator.close()


async def test_client_that_does_not_come_back_gets_nothing(cluster):
    operator = Operator(OPERATOR_TOKEN)
    bot = await leave_briefly(operator, cluster)
    ack = await operator.execute(cluster[1].target, bot.client_id, "late-" + bot.client_id, timeout=20)
    assert not ack.success and "did not reconnect" in ack.error
    back = await connect(cluster[2], bot.client_id, key=bot.api_key, auto_ack=False)
    await operator.close()
    await asyncio.sleep(0.5)
    assert not [c for c in back.commands if c.command_id == "late-" + bot.client_id]
    await back.__aexit__()


@pytest.mark.parametrize("db", ["postgresql"])
async def test_routing_on_postgresql(pg_cluster, db):
    operator = Operator(OPERATOR_TOKEN)
    bots = [await connect(replica, key=False) for replica in pg_cluster]
    try:
        for bot in bots:
            await wait_routable(operator, pg_cluster[0].target, bot.client_id)
        for replica, bot in itertools.product(pg_cluster, bots):
            assert (await operator.execute(replica.target, bot.client_id)).success
    finally:
        for bot in bots:
            await bot.__aexit__()
        await operator.close()
