"""Build the bus's Redis client from REDIS_URL: one server, Sentinel, a Redis Cluster, or the
in-process stand-in when unset. The topology is chosen by the URL alone (bus/redis_url.py)."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .redis_url import RedisMode, RedisTarget, parse_redis_url

_EMBEDDED: dict[str, object] = {}


@dataclass(frozen=True)
class BusRedis:
    """The client the bus runs on, and whether it is a cluster (sharded pub/sub, one slot per script)."""

    client: Any
    target: RedisTarget
    extra: tuple[Any, ...] = field(default=())  # clients to close with it (Sentinel's own)

    @property
    def sharded(self) -> bool:
        return self.target.mode is RedisMode.CLUSTER

    async def aclose(self) -> None:
        await self.client.aclose()
        for other in self.extra:
            await other.aclose()


def connect_bus_redis(url: str, socket_timeout: float, password: str = "", sentinel_password: str = "") -> BusRedis:
    """Raises InvalidRedisUrl (a ValueError naming what is wrong) before any connection is tried."""
    target = parse_redis_url(url, password, sentinel_password)
    options = _client_options(socket_timeout)
    auth = {"username": target.username or None, "password": target.password or None}
    if target.mode is RedisMode.EMBEDDED:
        return BusRedis(embedded_redis(), target)
    if target.mode is RedisMode.SINGLE:
        given = {key: value for key, value in auth.items() if value}  # the URL's own credentials win
        return BusRedis(Redis.from_url(target.url, **options, **given), target)
    if target.mode is RedisMode.SENTINEL:
        sentinel = Sentinel(list(target.nodes), **options, **auth, db=target.db, ssl=target.tls,
                            sentinel_kwargs={**options, "password": target.sentinel_password or None,
                                             "ssl": target.tls})
        return BusRedis(sentinel.master_for(target.master_name), target, tuple(sentinel.sentinels))
    cluster = RedisCluster(startup_nodes=[ClusterNode(host, port) for host, port in target.nodes], **auth,
                           ssl=target.tls, socket_timeout=socket_timeout,
                           socket_connect_timeout=options["socket_connect_timeout"], socket_keepalive=True,
                           socket_keepalive_options=options["socket_keepalive_options"],
                           health_check_interval=10)
    return BusRedis(cluster, target)


def build_redis(url: str, socket_timeout: float) -> Any:
    """The client alone (tools and tests that need no more than commands)."""
    return connect_bus_redis(url, socket_timeout).client


def _client_options(socket_timeout: float) -> dict[str, Any]:
    """Explicit timeouts, TCP keepalive, health checks and a bounded retry policy."""
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
