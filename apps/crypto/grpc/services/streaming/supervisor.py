"""One task per replica that ends silent streams and pings live ones (no per-stream timers)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Mapping

import grpc

from ...generated import crypto_streaming_pb2 as pb2
from ..config import CryptoStreamingConfig
from .session import CloseReason, StreamSession

logger = logging.getLogger(__name__)


def ping_command(sequence: int) -> pb2.DjangoCommand:
    command = pb2.DjangoCommand(command_id=uuid.uuid4().hex, ping=pb2.PingCommand(sequence=sequence))
    command.timestamp.GetCurrentTime()
    return command


class StreamSupervisor:
    """Heartbeat timeouts and periodic pings for every session of this replica."""

    def __init__(self, config: CryptoStreamingConfig, sessions: Callable[[], Mapping[str, StreamSession]]) -> None:
        self.config, self.sessions = config, sessions
        self.period = min(1.0, config.heartbeat_timeout / 4, config.ping_interval / 2)
        self._sequence = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="stream-supervisor")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

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
                session.close(CloseReason(grpc.StatusCode.DEADLINE_EXCEEDED,
                                          f"no heartbeat for {timeout:g}s", "heartbeat_timeout"))
            elif self.config.enable_ping and now >= session.next_ping:
                self._ping(session, now)

    def _ping(self, session: StreamSession, now: float) -> None:
        if session.next_ping:
            self._sequence += 1
            session.offer(ping_command(self._sequence))
        session.next_ping = now + self.config.ping_interval
