"""One client stream's state: a bounded outbound queue and how the stream must end.

Memory matters here: a replica holds thousands of idle streams, so a session is a __slots__ object
that creates its queue and in-flight map only when a command arrives and owns no task of its own
while idle. The stream's reading task registers itself (serve()) so close() can interrupt its read;
a writer task exists only while commands are waiting (see ConnectFlow).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable

import grpc

from ...generated import crypto_streaming_pb2 as pb2
from .reasons import CloseReason, slow_reader


WriterFactory = Callable[["StreamSession", grpc.aio.ServicerContext], "asyncio.Task[None]"]


class StreamSession:
    """State of one live ConnectClient stream; owned by the replica that holds it."""

    __slots__ = ("client_id", "queue_limit", "epoch", "connected_at", "last_seen", "last_heartbeat", "next_ping",
                 "close_reason", "draining", "wants_receipts", "reader_cancelled", "_inflight", "_queue", "_reader", "_writer",
                 "_start_writer", "_sink", "_tokens", "_tokens_at")

    def __init__(self, client_id: str, queue_limit: int, epoch: int = 0) -> None:
        self.client_id = client_id
        self.queue_limit = queue_limit
        self.epoch = epoch
        self.connected_at = time.time()
        self.last_seen = time.monotonic()
        self.last_heartbeat = self.connected_at
        self.next_ping = 0.0
        self.close_reason: CloseReason | None = None
        self.draining = False  # takes no new commands; in-flight ones may still be acked
        self.wants_receipts = False  # the bot registered with wants_receipts (MessageReceipt after each commit)
        self.reader_cancelled = False  # close() cancelled the reading task (not gRPC)
        self._inflight: dict[str, str] | None = None  # command_id -> replica awaiting the ack
        self._queue: deque[pb2.DjangoCommand] | None = None
        self._reader: asyncio.Task[object] | None = None  # the task reading the stream, once serving
        self._writer: asyncio.Task[None] | None = None  # only while commands are being written
        self._start_writer: WriterFactory | None = None
        self._sink: grpc.aio.ServicerContext | None = None  # where the writer writes
        self._tokens = 0.0  # inbound rate limit: a token bucket, filled on first use
        self._tokens_at = 0.0

    def __repr__(self) -> str:
        return f"StreamSession(client_id={self.client_id!r}, epoch={self.epoch}, closed={self.closed})"

    @property
    def closed(self) -> bool:
        return self.close_reason is not None

    @property
    def inflight(self) -> dict[str, str]:
        """command_id -> replica awaiting the ack; created on first use (idle streams carry none)."""
        if self._inflight is None:
            self._inflight = {}
        return self._inflight

    @inflight.setter
    def inflight(self, value: dict[str, str]) -> None:
        self._inflight = value

    def offer(self, command: pb2.DjangoCommand, *, draining_too: bool = False) -> bool:
        """Queue a command without waiting; a full queue ends the stream (slow reader). A draining stream
        takes only what `draining_too` marks (receipts: a drain confirms what it stored before it ends)."""
        if self.closed or (self.draining and not draining_too):
            return False
        queue = self._queue
        if queue is None:
            queue = self._queue = deque()
        if len(queue) >= self.queue_limit:
            self.close(slow_reader(self.queue_limit))
            return False
        queue.append(command)
        self._wake_writer()
        return True

    def withdraw(self, command_id: str) -> bool:
        """Take back a command queued but not written yet (a cancelled broadcast); True when it was."""
        queue = self._queue
        if not queue:
            return False
        for command in queue:
            if command.command_id == command_id:
                queue.remove(command)
                return True
        return False

    def serve(self, start_writer: WriterFactory, sink: grpc.aio.ServicerContext) -> None:
        """The calling task reads the stream from now on; queued commands are written to `sink` by tasks
        that `start_writer` (shared by all sessions) creates on demand. Commands queued before are written now."""
        self._reader = asyncio.current_task()
        self._start_writer, self._sink = start_writer, sink
        self._wake_writer()

    def close(self, reason: CloseReason) -> None:
        """First reason wins; interrupts the reader and the writer so the stream ends promptly."""
        if self.close_reason is not None:
            return
        self.close_reason = reason
        if self._reader is None and self._writer is None:
            return
        current = asyncio.current_task()
        if self._reader is not None and self._reader is not current and not self._reader.done():
            self.reader_cancelled = True
            self._reader.cancel()
        if self._writer is not None and self._writer is not current:
            self._writer.cancel()

    def next_command(self) -> pb2.DjangoCommand | None:
        """The next command to write, or None when there is none or the stream is closing."""
        if self.closed or not self._queue:
            return None
        return self._queue.popleft()

    def writer_done(self) -> None:
        """Called by the writer as it exits; an emptied queue is dropped (an idle stream keeps none)."""
        self._writer = None
        if not self._queue:
            self._queue = None
        self._wake_writer()

    @property
    def writer(self) -> asyncio.Task[None] | None:
        return self._writer

    def _wake_writer(self) -> None:
        if self._writer is None and self._start_writer is not None and self._queue and not self.closed:
            assert self._sink is not None
            writer = self._start_writer(self, self._sink)
            if not writer.done():  # an eager writer that ended at once has called writer_done() already
                self._writer = writer

    def admit(self, rate: int, now: float) -> bool:
        """Take one token of a bucket that refills `rate` per second up to a burst of 2 * rate (0: no limit)."""
        if rate <= 0:
            return True
        burst = 2.0 * rate
        tokens = burst if not self._tokens_at else min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True

    def touch(self, heartbeat: bool) -> None:
        self.last_seen = time.monotonic()
        if heartbeat:
            self.last_heartbeat = time.time()

    def pending(self) -> list[pb2.DjangoCommand]:
        """Commands queued but never written (for failure acks when the stream ends); receipts are no commands."""
        return [c for c in self._queue if c.command_id] if self._queue else []

    @property
    def idle(self) -> bool:
        """Nothing queued or being written."""
        return not self._queue and self._writer is None
