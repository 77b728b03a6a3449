"""The replica's write-behind buffer: streams hand over validated writes, one task stores them in batches.

Why: one ORM round trip and one commit per client message caps a replica at about 1,000 messages/s
(Django runs every ORM call on one thread). Batched, a flush costs a handful of statements in one
transaction, whatever the number of messages.

- Bounded: when `limit` writes are waiting or being written, put() waits for room, so a flood slows
  the sending streams down (HTTP/2 flow control) instead of growing memory or dropping anything.
- Ordered: one flush task takes writes in the order they were put and stores batch after batch, so
  later messages of a client never land before earlier ones. behind() orders a direct write (stream
  open/close bookkeeping) after everything already buffered.
- A database outage holds, never rejects: a batch the database cannot take (StorageUnavailable) is
  tried again with backoff for up to `retry_for` seconds while the full buffer holds the streams
  back; only then are its messages refused as "storage unavailable".
- Receipts follow the commit: a flush's report names the receipting bots' messages it committed, and
  on_receipts gets them before settle() returns, so a draining replica can confirm what it stored.
- Nothing is lost on shutdown: close() stores whatever is left (unless the database hangs past its
  timeout, which is logged with the count); a write put after close() is stored at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, ParamSpec

from .. import metrics
from ..tasks import Spawn, spawn_task
from .plan import FlushReport, StorageUnavailable, Write, refused_at_flush

logger = logging.getLogger(__name__)
BatchWrite = Callable[[Sequence[Write]], Awaitable[FlushReport]]
P = ParamSpec("P")
RETRY_FIRST, RETRY_MAX = 0.05, 2.0  # backoff between tries of a batch the database could not take


class IngestBuffer:
    """Bounded FIFO of validated writes with a flush task; `write_batch` stores one batch."""

    def __init__(self, write_batch: BatchWrite, batch_size: int = 2_000, interval: float = 0.01,
                 limit: int = 20_000, forget_client: Callable[[str], None] = lambda client_id: None,
                 retry_for: float = 60.0, on_receipts: Callable[[dict[str, list[str]]], None] = lambda r: None
                 ) -> None:
        if batch_size < 1 or limit < batch_size or interval <= 0:
            raise ValueError("need batch_size >= 1, limit >= batch_size and interval > 0")
        self.write_batch, self.batch_size, self.interval, self.limit = write_batch, batch_size, interval, limit
        self.forget_client = forget_client  # a cached client pk that failed a write is looked up afresh
        self.retry_for = retry_for  # how long a batch is tried again while the database is unavailable
        self.on_receipts = on_receipts  # client_id -> message_ids committed by a flush (before settle() returns)
        self._queue: list[Write] = []
        self._in_flight = 0
        self._put_count = 0  # writes ever put
        self._done_count = 0  # writes ever stored (or refused)
        self._has_writes = asyncio.Event()
        self._batch_ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._progress = asyncio.Event()  # replaced after every flush; settle() waits on it
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def pending(self) -> int:
        """Writes waiting or being written."""
        return len(self._queue) + self._in_flight

    def start(self, spawn: Spawn = spawn_task) -> None:
        self._task = spawn(self._run(), "ingest-flush")

    async def put(self, write: Write) -> None:
        """Queue one write; waits while the buffer is full (backpressure to the stream)."""
        while len(self._queue) + self._in_flight >= self.limit:
            self._room.clear()
            await self._room.wait()
        if self._closing and self._task is None:  # closed: nobody flushes any more, store it now
            self._put_count += 1
            await self._flush([write])
            return
        self._queue.append(write)
        self._put_count += 1
        if len(self._queue) == 1:
            self._has_writes.set()
        if len(self._queue) >= self.batch_size:
            self._batch_ready.set()

    async def settle(self) -> None:
        """Return once every write put before this call has been stored (or refused); flushes without delay."""
        target = self._put_count
        while self._done_count < target:
            self._batch_ready.set()  # someone waits: do not wait for a full batch or the interval
            await self._progress.wait()

    def behind(self, hook: Callable[P, Awaitable[None]]) -> Callable[P, Coroutine[Any, Any, None]]:
        """`hook`, run only after everything buffered before the call: a direct write stays in message order."""

        async def ordered(*args: P.args, **kwargs: P.kwargs) -> None:
            await self.settle()
            await hook(*args, **kwargs)

        return ordered

    async def close(self, timeout: float | None = None) -> None:
        """Store everything still buffered, then stop the flush task.

        Bounded by `timeout` (None: wait as long as it takes): a hung database must not keep a
        replica from exiting; what could not be stored by then is counted in the log line.
        """
        self._closing = True
        self._has_writes.set()
        self._batch_ready.set()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=timeout)
            if not done:
                logger.error("ingest.close_incomplete left=%d timeout=%.1f", self.pending, timeout)
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
                self._task = None
                return
            self._task = None
        while self._queue:  # the task died (a bug): do not lose what it left
            await self._flush_next()
        logger.info("ingest.closed stored=%d", self._done_count)

    async def _run(self) -> None:
        while not (self._closing and not self._queue):
            await self._has_writes.wait()
            if len(self._queue) < self.batch_size and not self._closing:
                try:
                    async with asyncio.timeout(self.interval):
                        await self._batch_ready.wait()
                except TimeoutError:
                    pass
            if self._queue:
                await self._flush_next()

    async def _flush_next(self) -> None:
        batch = self._queue[:self.batch_size]
        del self._queue[:self.batch_size]
        if not self._queue:
            self._has_writes.clear()
        if len(self._queue) < self.batch_size:
            self._batch_ready.clear()
        await self._flush(batch)

    async def _flush(self, batch: list[Write]) -> None:
        self._in_flight += len(batch)
        try:
            report = await self._write_retrying(batch)
        except Exception as exc:  # write_batch never raises by contract; if it does, say what was lost
            logger.error("ingest.flush_failed writes=%d error=%s", len(batch), type(exc).__name__, exc_info=True)
            report = FlushReport(len(batch))
        finally:
            self._in_flight -= len(batch)
            self._done_count += len(batch)
            self._room.set()
            progress, self._progress = self._progress, asyncio.Event()
            progress.set()
        self._account(report)

    async def _write_retrying(self, batch: list[Write]) -> FlushReport:
        """The batch, stored once the database takes it; refused only after `retry_for` seconds. A batch
        the database went away from midway (write by write after a bad write) is tried again from there."""
        started, delay = time.monotonic(), RETRY_FIRST
        done, pending = FlushReport(), batch
        while True:
            try:
                with metrics.INGEST_BATCH_SECONDS.time():
                    report = await self.write_batch(pending)
            except StorageUnavailable as exc:
                reason = str(exc)
            else:
                done.absorb(report)
                if not report.unstored:
                    return done
                pending, reason = report.unstored, report.unavailable
            if time.monotonic() - started >= self.retry_for:
                logger.error("ingest.storage_gave_up writes=%d after=%.1f error=%s", len(pending), self.retry_for,
                             reason)
                refusal = f"storage unavailable: {reason}"[:200]
                done.refused += [r for w in pending for r in refused_at_flush(w, refusal)]
                return done
            logger.warning("ingest.storage_unavailable writes=%d error=%s retry_in=%.2f", len(pending), reason,
                           delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)

    def _account(self, report: FlushReport) -> None:
        """Refusals only the writer could find were never seen by the stream: count and log them here."""
        for refusal in report.refused:
            metrics.MESSAGES_REJECTED.labels(refusal.kind or "empty", metrics.reject_cause(refusal.reason)).inc()
            logger.warning("message.rejected client_id=%s message_id=%r payload=%s reason=%s",
                           refusal.ctx.client_id, refusal.ctx.message_id, refusal.kind, refusal.reason)
        for client_id in report.stale_clients:
            self.forget_client(client_id)
        if report.receipts:
            self.on_receipts(report.receipts)
