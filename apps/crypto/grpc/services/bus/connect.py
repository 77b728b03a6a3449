"""Build the bus's Redis client from REDIS_URL: one server, or the in-process stand-in when unset."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

_EMBEDDED: dict[str, object] = {}


@dataclass(frozen=True)
class BusRedis:
    """The client the bus runs on, and whether it is a cluster (sharded pub/sub, one slot per script)."""

    client: Any
    sharded: bool = False

    async def aclose(self) -> None:
        await self.client.aclose()


def connect_bus_redis(url: str, socket_timeout: float) -> BusRedis:
    return BusRedis(build_redis(url, socket_timeout))


def build_redis(url: str, socket_timeout: float) -> Redis:
    """Explicit timeouts, TCP keepalive, health checks and a bounded retry policy."""
    if not url:
        return embedded_redis()
    return Redis.from_url(url, **_client_options(socket_timeout))


def _client_options(socket_timeout: float) -> dict[str, Any]:
    return dict(
        socket_timeout=socket_timeout,
        socket_connect_timeout=min(socket_timeout, 2.0),
        socket_keepalive=True,
        socket_keepalive_options=_keepalive_options(),
        health_check_interval=10,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.02), retries=2),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def embedded_redis() -> Redis:
    """A client of the process's in-process Redis (fakeredis with Lua): the single-replica mode.

    The data lives in one FakeServer per process; each client binds to the loop that uses it.
    """
    import fakeredis

    server = _EMBEDDED.setdefault("server", fakeredis.FakeServer())
    return fakeredis.FakeAsyncRedis(server=server)


def _keepalive_options() -> dict[int, int]:
    names = {"TCP_KEEPIDLE": 10, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in names.items() if hasattr(socket, name)}
