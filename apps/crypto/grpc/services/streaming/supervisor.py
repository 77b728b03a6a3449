"""One task per replica that ends silent streams and pings live ones (no per-stream timers)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping

from ...generated import crypto_streaming_pb2 as pb2
from .. import metrics
from ..config import CryptoStreamingConfig
from ..tasks import TaskOwner
from ..proto.validation import KEEPALIVE_PREFIX
from .reasons import heartbeat_timeout
from .session import StreamSession

logger = logging.getLogger(__name__)
# Keepalive pings carry KEEPALIVE_PREFIX (operators may not use it): their acks are no operator's commands
# and are not stored as CommandRecords (records.store_acks); they are counted in crypto_keepalive_pings_total.


def is_keepalive(command_id: str) -> bool:
    return command_id.startswith(KEEPALIVE_PREFIX)


def ping_command(sequence: int) -> pb2.DjangoCommand:
    command = pb2.DjangoCommand(command_id=KEEPALIVE_PREFIX + uuid.uuid4().hex,
                                ping=pb2.PingCommand(sequence=sequence))
    command.timestamp.GetCurrentTime()
    return command


class StreamSupervisor:
    """Heartbeat timeouts and periodic pings for every session of this replica."""

    def __init__(self, config: CryptoStreamingConfig, sessions: Callable[[], Mapping[str, StreamSession]],
                 tasks: TaskOwner | None = None) -> None:
        self.config, self.sessions = config, sessions
        self.period = min(1.0, config.heartbeat_timeout / 4, config.ping_interval / 2)
        self._sequence = 0
        self._tasks = tasks or TaskOwner("supervisor")

    def start(self) -> None:
        self._tasks.spawn(self._loop(), "stream-supervisor")

    async def close(self) -> None:
        await self._tasks.close()

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.period)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        timeout = self.config.heartbeat_timeout
        for session in list(self.sessions().values()):
            if session.closed:  # ending already; its stream detaches it
                continue
            if now - session.last_seen > timeout:
                logger.info("stream.heartbeat_timeout client_id=%s", session.client_id)
                session.close(heartbeat_timeout(timeout))
            elif self.config.enable_ping and now >= session.next_ping:
                self._ping(session, now)

    def _ping(self, session: StreamSession, now: float) -> None:
        if session.next_ping:
            self._sequence += 1
            if session.offer(ping_command(self._sequence)):
                metrics.KEEPALIVE_PINGS.inc()
        session.next_ping = now + self.config.ping_interval
