"""The listener's subscription stays put while idle (one SUBSCRIBE/SSUBSCRIBE, not one per socket
timeout), and still delivers afterwards: a re-subscription leaves a moment when publishes reach nobody
and the replica's clients look gone."""

from __future__ import annotations

import asyncio

import pytest

from apps.crypto.grpc.services.bus import subscription
from apps.crypto.grpc.services.bus.connect import connect_bus_redis
from tests.support.redis_server import RedisServer


@pytest.fixture
def plain_redis():
    server = RedisServer().start()
    yield server
    server.stop()


async def idle_then_publish(bus_redis, channel: str, idle: float) -> tuple[list[bytes], int]:
    received: list[bytes] = []

    async def listen() -> None:
        async with subscription.subscribe(bus_redis.client, channel, bus_redis.sharded) as messages:
            async for data in messages:
                received.append(data)

    task = asyncio.create_task(listen())
    await asyncio.sleep(idle)
    command = "SPUBLISH" if bus_redis.sharded else "PUBLISH"
    receivers = await bus_redis.client.execute_command(command, channel, "after-idle")
    await asyncio.sleep(0.3)
    assert not task.done(), task.exception()  # the subscription was never lost
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return received, int(receivers)


async def subscribed_through_idle(url: str, channel: str, idle: float, monkeypatch) -> tuple[list[bytes], int]:
    monkeypatch.setattr(subscription, "IDLE_PING", 0.3)
    bus_redis = connect_bus_redis(url, socket_timeout=0.5)
    try:
        return await idle_then_publish(bus_redis, channel, idle)
    finally:
        await bus_redis.aclose()


async def test_a_plain_subscription_outlives_the_socket_timeout(plain_redis, monkeypatch):
    received, receivers = await subscribed_through_idle(plain_redis.url, "t:chan:A", 2.0, monkeypatch)
    assert received == [b"after-idle"] and receivers == 1
    assert plain_redis.client().info("commandstats")["cmdstat_subscribe"]["calls"] == 1


async def test_a_sharded_subscription_pings_while_idle_and_stays(redis_cluster, monkeypatch):
    # idle past redis-py's 10 s health check, which a subscribed connection cannot answer
    received, receivers = await subscribed_through_idle(redis_cluster.url, "t:chan:B", 11.0, monkeypatch)
    assert received == [b"after-idle"] and receivers == 1
