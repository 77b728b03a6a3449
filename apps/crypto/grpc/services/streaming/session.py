"""One client stream's state: a bounded outbound queue and how the stream must end."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field

import grpc

from ...generated import crypto_streaming_pb2 as pb2


@dataclass(frozen=True)
class CloseReason:
    """Why a stream ends: the status the client sees and a bounded label for logs and metrics."""

    code: grpc.StatusCode
    details: str
    label: str


NORMAL = CloseReason(grpc.StatusCode.OK, "", "normal")


def slow_reader(limit: int) -> CloseReason:
    return CloseReason(grpc.StatusCode.RESOURCE_EXHAUSTED,
                       f"client is not reading its commands: more than {limit} queued", "slow_reader")


@dataclass(eq=False)
class StreamSession:
    """State of one live ConnectClient stream; owned by the replica that holds it."""

    client_id: str
    queue_limit: int
    epoch: int = 0
    connected_at: float = field(default_factory=time.time)
    last_seen: float = field(default_factory=time.monotonic)
    last_heartbeat: float = field(default_factory=time.time)
    next_ping: float = 0.0
    inflight: dict[str, str] = field(default_factory=dict)  # command_id -> replica awaiting the ack
    close_reason: CloseReason | None = None
    draining: bool = False  # takes no new commands; in-flight ones may still be acked
    _queue: deque[pb2.DjangoCommand] = field(default_factory=deque)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _ended: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    def offer(self, command: pb2.DjangoCommand) -> bool:
        """Queue a command without waiting; a full queue ends the stream (slow reader)."""
        if self.closed or self.draining:
            return False
        if len(self._queue) >= self.queue_limit:
            self.close(slow_reader(self.queue_limit))
            return False
        self._queue.append(command)
        self._wake.set()
        return True

    def close(self, reason: CloseReason) -> None:
        """First reason wins; wakes the writer so the stream ends promptly."""
        if self.close_reason is None:
            self.close_reason = reason
            self._wake.set()
            self._ended.set()

    async def wait_closed(self) -> CloseReason:
        await self._ended.wait()
        assert self.close_reason is not None
        return self.close_reason

    async def next_command(self) -> pb2.DjangoCommand | None:
        """The next command to write, or None once the stream is closing."""
        while not self.closed:
            if self._queue:
                return self._queue.popleft()
            self._wake.clear()
            await self._wake.wait()
        return None

    def touch(self, heartbeat: bool) -> None:
        self.last_seen = time.monotonic()
        if heartbeat:
            self.last_heartbeat = time.time()

    def pending(self) -> list[pb2.DjangoCommand]:
        """Commands queued but never written (for failure acks when the stream ends)."""
        return list(self._queue)
