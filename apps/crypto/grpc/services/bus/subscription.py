"""The listener's subscription to one channel: plain pub/sub, or sharded pub/sub on a Redis Cluster.

redis-py 6's asyncio RedisCluster has no pub/sub, so on a cluster the subscription is a connection of
its own to the master serving the channel's slot (SSUBSCRIBE). A slot move (`sunsubscribe` from the
server), a failover or a silent node all end the iteration with an error: the listener then
subscribes again against a refreshed slot map, and re-checks its claims.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError

IDLE_PING = 10.0  # a sharded subscription silent this long is pinged; silent twice, it counts as lost


@asynccontextmanager
async def subscribe(redis: Any, channel: str, sharded: bool) -> AsyncIterator[AsyncIterator[bytes]]:
    """Yields the messages' payloads; raises (RedisError/OSError) when the subscription is lost."""
    if not sharded:
        async with redis.pubsub(ignore_subscribe_messages=True) as pubsub:
            await pubsub.subscribe(channel)
            yield _plain(pubsub)
        return
    await redis.nodes_manager.initialize()  # the current slot map: the channel's master may have moved
    node = redis.get_node_from_key(channel)
    # Its own liveness check (PING while idle): redis-py's health check expects a plain PONG, which a
    # subscribed connection does not give.
    connection = node.connection_class(**{**node.connection_kwargs, "health_check_interval": 0})
    try:
        await connection.connect()
        await connection.send_command("SSUBSCRIBE", channel)
        reply = await connection.read_response()
        if _kind(reply) != "ssubscribe":
            raise RedisConnectionError(f"SSUBSCRIBE {channel} answered {reply!r}")
        yield _sharded(connection, channel)
    finally:
        await connection.disconnect()


async def _plain(pubsub: Any) -> AsyncIterator[bytes]:
    """get_message with a timeout of its own, not listen(): listen() reads under the socket timeout,
    and redis-py answers each idle timeout by reconnecting and re-subscribing, which left a moment
    every few seconds when a publish to this replica reached nobody (and the owner looked gone)."""
    while True:
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=IDLE_PING)
        if message is not None and message.get("type") == "message":
            yield message["data"]


async def _sharded(connection: Any, channel: str) -> AsyncIterator[bytes]:
    silent = 0
    while True:
        reply = await connection.read_response(timeout=IDLE_PING)
        if reply is None:  # nothing for IDLE_PING seconds: make sure the node is still there
            silent += 1
            if silent > 1:
                raise RedisConnectionError(f"shard of {channel} stopped answering")
            await connection.send_command("PING", check_health=False)
            continue
        silent = 0
        kind = _kind(reply)
        if kind == "smessage":
            yield reply[2]
        elif kind == "sunsubscribe":  # the slot moved to another node
            raise RedisConnectionError(f"{channel} moved to another shard")


def _kind(reply: Any) -> str:
    if isinstance(reply, list) and reply:
        head = reply[0]
        return (head.decode() if isinstance(head, bytes) else str(head)).lower()
    return ""
