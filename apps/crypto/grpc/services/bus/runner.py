"""Owns the bus's background work: the channel listener and the upkeep.

The upkeep costs one Redis call per beat per replica (its lease), plus a rare batched audit of its
claims: never a call per client per beat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError

from .. import metrics
from ..tasks import TaskOwner
from .bus import CommandBus
from .link import BusUnavailable
from .subscription import subscribe

logger = logging.getLogger(__name__)
MAX_BACKOFF = 0.5  # a listener retries at least this often: back within half a second of a Redis failover


class BusRunner:
    """Listener and upkeep tasks; reports Redis reachability through on_health."""

    def __init__(self, bus: CommandBus, redis: Redis, beat_interval: float, audit_interval: float,
                 on_health: Callable[[bool], None], tasks: TaskOwner | None = None, target: str = "") -> None:
        self.bus, self.redis, self.target = bus, redis, target  # target: the Redis, described without secrets
        self.last_error = ""
        self.beat_interval, self.audit_interval = beat_interval, audit_interval
        self.on_health = on_health
        self.healthy = False
        self._subscribed = asyncio.Event()
        self._ever_subscribed = False
        owner = tasks or TaskOwner("bus")
        self._loops = owner.scope("loops")  # listener and upkeep: cancelled on close
        self._handling = owner.scope("follow-ups")  # follow-ups being published: awaited on close

    async def start(self) -> None:
        """Subscribe before serving, so no command routed to us is missed."""
        self._loops.spawn(self._listen(), "bus-listener")
        self._loops.spawn(self._beat(), "bus-beat")
        self._loops.spawn(self._audits(), "bus-audit")
        try:
            await asyncio.wait_for(self._subscribed.wait(), 10)
        except TimeoutError:  # serve anyway (NOT_SERVING) and keep trying: an outage must not crash-loop pods
            logger.error("bus.redis_unreachable target=%s error=%s: serving NOT_SERVING until it answers",
                         self.target or "-", self.last_error or "no answer within 10s")

    async def close(self) -> None:
        await self._loops.close()
        try:
            await self.bus.link.retire()
        except BusUnavailable:
            pass  # readers skip a lease that stopped beating
        await self._handling.close(grace=None)
        await self.bus.close()

    def _set_health(self, healthy: bool) -> None:
        if healthy != self.healthy:
            self.healthy = healthy
            logger.info("bus.health healthy=%s", healthy)
            self.on_health(healthy)

    async def _listen(self) -> None:
        backoff = 0.05
        while True:
            try:
                await self._listen_once()
            except (RedisError, OSError, BusUnavailable) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
                self._subscribed.clear()
                self._set_health(False)
                logger.warning("bus.listener_error error=%s retry_in=%.2f", type(exc).__name__, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF)

    async def _listen_once(self) -> None:
        link = self.bus.link
        async with subscribe(self.redis, link.keys.channel(self.bus.me), link.sharded) as messages:
            if self._ever_subscribed:
                metrics.REDIS_RECONNECTS.inc()
            self._ever_subscribed = True
            await self._recover()
            self._subscribed.set()
            async for data in messages:
                self._on_message(data)

    def _on_message(self, data: bytes) -> None:
        """Act on the envelope now (arrival order is delivery order); only a reply to publish
        becomes a task, so a slow publish never stalls the channel."""
        follow_up = self.bus.handle(data)
        if follow_up is None:
            return
        self._handling.spawn(self._finish(follow_up), "bus-follow-up")

    async def _finish(self, follow_up: Coroutine[Any, Any, None]) -> None:
        try:
            await follow_up
        except BusUnavailable as exc:
            logger.warning("bus.handle_failed error=%s", exc)

    async def _recover(self) -> None:
        """After (re)subscribing: re-check every claim (Redis may have lost them), then report healthy."""
        await self.bus.refresh_claims()
        await self.bus.link.beat(len(self.bus.sessions))
        self._set_health(True)

    async def _beat(self) -> None:
        """The lease, and the health it proves: one call per interval."""
        while True:
            await asyncio.sleep(self.beat_interval)
            try:
                with metrics.BUS_ROUNDTRIP.time():
                    await self.bus.link.beat(len(self.bus.sessions))
                if self._subscribed.is_set():
                    self._set_health(True)
            except BusUnavailable as exc:
                self._set_health(False)
                logger.warning("bus.upkeep_failed step=beat error=%s", exc)

    async def _audits(self) -> None:
        """Rare and batched: extends the owner keys' long TTL, and ends streams whose claim was taken
        while this replica missed the eviction."""
        while True:
            await asyncio.sleep(self.audit_interval)
            try:
                await self.bus.refresh_claims()
            except BusUnavailable as exc:
                logger.warning("bus.upkeep_failed step=audit error=%s", exc)
