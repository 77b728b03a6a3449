"""The ConnectClient flow: identify and authenticate, claim, then read and write until closed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from typing import TypeVar

import grpc
from google.protobuf.message import DecodeError

from ...generated import crypto_streaming_pb2 as pb2
from ..auth import MAX_CLIENT_ID, AuthError
from ..inbound import MessageContext
from ..proto.wire import Malformed
from .. import metrics
from .ports import StreamPort, Unavailable
from .reasons import CLIENT_GONE, DRAINING, NORMAL, CloseReason, changed_id, rate_limited
from .session import StreamSession

logger = logging.getLogger(__name__)
T = TypeVar("T")
REPLICA_HEADER = "x-replica-id"
# Streams whose connect-time status write runs at once; the others wait their turn holding almost nothing.
# The writes go through one ORM thread anyway, so more in flight only adds memory: in a reconnect storm
# each waiting write held a chain of coroutines and futures, and the holes they left in the allocator
# stayed in RSS (about 6 KB per stream at 1,000 connects/s).
CONNECT_WRITES_IN_FLIGHT = 32


class StreamAborted(Exception):
    """The stream must end with this status before it ever became a session."""

    def __init__(self, code: grpc.StatusCode, details: str, label: str = "invalid") -> None:
        super().__init__(details)
        self.code, self.details, self.label = code, details, label


class ConnectFlow:
    """Runs one ConnectClient stream on behalf of the servicer, through a StreamPort (not the runtime)."""

    def __init__(self, port: StreamPort) -> None:
        self.port = port
        self._connect_writes = asyncio.Semaphore(CONNECT_WRITES_IN_FLIGHT)
        self._writer_factory = self._start_writer  # one bound method for all sessions, not one per stream

    async def run(self, requests: AsyncIterator[pb2.ClientMessage], context: grpc.aio.ServicerContext) -> None:
        """Serve one stream in the RPC's own task until it closes.

        `requests` is not used: messages are read with context.read(), which keeps no async-generator
        state alive per idle stream, and no message is referenced once it is processed. session.close()
        from elsewhere cancels this task; that is told apart from gRPC cancelling the RPC (uncancel).
        """
        try:
            bound = await isolated(self.port.authenticator.client_for(metadata_of(context)))  # before any message
            first = await self._first_message(context)
            self.port.authenticator.check_bound(bound, first.client_id)
            session = await self._open(first.client_id, context)
        except (StreamAborted, AuthError) as exc:
            metrics.STREAMS_CLOSED.labels(getattr(exc, "label", "auth")).inc()
            await context.abort(exc.code, exc.details)
            return
        except Unavailable as exc:
            metrics.STREAMS_CLOSED.labels("redis_unavailable").inc()
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            return
        try:
            session.serve(self._writer_factory, context)  # commands flow now, not after the bookkeeping
            async with self._connect_writes:  # before the first message is read: status rows keep their order
                await isolated(self.port.lifecycle.connected(session.client_id, self.port.replica_id))
            if not session.closed and await self._handle(session, first):
                del first
                await self._read(session, context)
            _consume_close_cancel(session, delivered=False)
        except asyncio.CancelledError:
            if not _consume_close_cancel(session, delivered=True):
                raise  # gRPC cancelled the RPC (client gone, server stopping)
        finally:
            session.close(CLIENT_GONE)
            await asyncio.shield(self._finish(session))
        reason = session.close_reason or NORMAL
        if reason.code != grpc.StatusCode.OK and reason is not CLIENT_GONE:
            await context.abort(reason.code, reason.details)

    async def _open(self, client_id: str, context: grpc.aio.ServicerContext) -> StreamSession:
        """Attach (claim) and tell the client it is accepted. Runs shielded: a client that cancels
        meanwhile still gets its session detached and its claim released, never left behind as a
        ghost that callers would be told is connected."""
        if self.port.draining():
            raise StreamAborted(DRAINING.code, DRAINING.details, DRAINING.label)
        opening = asyncio.ensure_future(self._attach(client_id, context))
        try:
            return await asyncio.shield(opening)
        except asyncio.CancelledError:
            session = await _outcome(opening)
            if session is not None:
                session.close(CLIENT_GONE)
                await _outcome(asyncio.ensure_future(self._finish(session)))
            raise

    async def _attach(self, client_id: str, context: grpc.aio.ServicerContext) -> StreamSession:
        session = StreamSession(client_id, self.port.config.outbound_queue_size)
        await self.port.attach(session)
        metrics.STREAMS_OPENED.inc()
        metrics.ACTIVE_STREAMS.inc()
        try:
            await context.send_initial_metadata(((REPLICA_HEADER, self.port.replica_id),))  # "accepted"
        except Exception as exc:  # the client is gone already: the stream ends at its first read
            logger.info("stream.accept_failed client_id=%s error=%s", client_id, type(exc).__name__)
        logger.info("stream.opened client_id=%s replica=%s epoch=%d", client_id, self.port.replica_id, session.epoch)
        return session

    async def _first_message(self, context: grpc.aio.ServicerContext) -> pb2.ClientMessage:
        """The first message names the client; a silent or anonymous stream does not hang."""
        timeout = self.port.config.heartbeat_timeout
        try:
            first = await asyncio.wait_for(context.read(), timeout)
        except TimeoutError:
            raise StreamAborted(grpc.StatusCode.DEADLINE_EXCEEDED, f"no first message within {timeout:g}s",
                                "heartbeat_timeout") from None
        except DecodeError as exc:
            raise StreamAborted(grpc.StatusCode.INVALID_ARGUMENT, f"malformed ClientMessage: {exc}") from None
        if first is grpc.aio.EOF:
            raise StreamAborted(grpc.StatusCode.INVALID_ARGUMENT, "stream closed before any message")
        if isinstance(first, Malformed):
            raise StreamAborted(grpc.StatusCode.INVALID_ARGUMENT, first.details)
        assert isinstance(first, pb2.ClientMessage)
        if not first.client_id:
            raise StreamAborted(grpc.StatusCode.INVALID_ARGUMENT, "first message must carry a client_id")
        if len(first.client_id) > MAX_CLIENT_ID:
            raise StreamAborted(grpc.StatusCode.INVALID_ARGUMENT,
                                f"client_id longer than {MAX_CLIENT_ID} characters")
        return first

    async def _finish(self, session: StreamSession) -> None:
        writer = session.writer
        if writer is not None:  # close() cancelled it; let it unwind before the session is released
            await asyncio.gather(writer, return_exceptions=True)
        reason = session.close_reason or NORMAL
        metrics.ACTIVE_STREAMS.dec()
        metrics.STREAMS_CLOSED.labels(reason.label).inc()
        try:
            await self.port.detach(session)
        except Exception as exc:  # Redis down: the claim expires by its TTL
            logger.warning("stream.release_failed client_id=%s error=%s detail=%s", session.client_id,
                           type(exc).__name__, exc)
        if reason.label != "takeover":  # the client lives on elsewhere: leave its status alone
            await self.port.lifecycle.disconnected(session.client_id, reason.label)
        logger.info("stream.closed client_id=%s reason=%s", session.client_id, reason.label)

    async def _read(self, session: StreamSession, context: grpc.aio.ServicerContext) -> None:
        """Process messages until the client half-closes or the stream ends."""
        while not session.closed:
            try:
                message = await context.read()
            except asyncio.CancelledError:
                raise
            except DecodeError as exc:
                session.close(CloseReason(grpc.StatusCode.INVALID_ARGUMENT, f"malformed ClientMessage: {exc}",
                                          "invalid"))
                return
            except Exception as exc:
                self._read_failed(session, exc)
                return
            if message is grpc.aio.EOF:
                session.close(NORMAL)
                return
            if isinstance(message, Malformed):
                session.close(CloseReason(grpc.StatusCode.INVALID_ARGUMENT, message.details, "invalid"))
                return
            assert isinstance(message, pb2.ClientMessage)
            if message.client_id != session.client_id:
                session.close(changed_id(session.client_id, message.client_id))
                return
            if not await self._handle(session, message):
                return
            del message  # an idle stream keeps no message alive

    async def _handle(self, session: StreamSession, message: pb2.ClientMessage) -> bool:
        """Process one message; False when that failed and the stream is closing."""
        try:
            await self._process(session, message)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._read_failed(session, exc)
            return False

    @staticmethod
    def _read_failed(session: StreamSession, exc: Exception) -> None:
        logger.info("stream.read_ended client_id=%s error=%s", session.client_id, type(exc).__name__)
        session.close(CLIENT_GONE)

    async def _process(self, session: StreamSession, message: pb2.ClientMessage) -> None:
        if not session.admit(self.port.config.max_messages_per_second, time.monotonic()):
            session.close(rate_limited(self.port.config.max_messages_per_second))
            return
        kind = message.WhichOneof("payload") or "empty"
        metrics.child(metrics.MESSAGES_IN, kind).inc()
        session.touch(heartbeat=kind == "heartbeat")
        if kind == "register":  # from this message on (it included), the bot's messages are receipted
            session.wants_receipts = message.register.wants_receipts
        await self._store(session, message, kind)
        self.port.publisher.publish_client_message(session.client_id, message)

    def _context(self, session: StreamSession, message: pb2.ClientMessage) -> MessageContext:
        ts, sent_at = message.timestamp, None
        if ts.seconds or ts.nanos:  # unset or all-zero: the receive time orders the report
            try:  # a third of Timestamp.ToDatetime's cost, same value
                sent_at = datetime.fromtimestamp(ts.seconds, UTC).replace(microsecond=ts.nanos // 1000)
            except (ValueError, OverflowError, OSError):
                pass  # out of range: the dispatcher refuses the message with the reason
        return MessageContext(session.client_id, message.message_id, self.port.replica_id, datetime.now(UTC),
                              self.port.config.max_text_chars, sent_at, session.wants_receipts)

    async def _store(self, session: StreamSession, message: pb2.ClientMessage, kind: str) -> None:
        rejected = await self.port.dispatch(self._context(session, message), message)
        if rejected is not None:
            metrics.MESSAGES_REJECTED.labels(kind, metrics.reject_cause(rejected)).inc()

    def _start_writer(self, session: StreamSession, context: grpc.aio.ServicerContext) -> asyncio.Task[None]:
        """A writer task for a session whose queue just got a command; it exits once the queue is empty,
        so an idle stream has no writer task. Not a TaskOwner task: it is part of its stream, which
        awaits it in _finish, and session.close() cancels it.

        Started eagerly: the write begins inside offer(), not one loop iteration later (one callback
        less per command, and the command is on the wire sooner)."""
        return asyncio.Task(self._write(session, context), loop=asyncio.get_running_loop(), eager_start=True)

    async def _write(self, session: StreamSession, context: grpc.aio.ServicerContext) -> None:
        try:
            while (command := session.next_command()) is not None:
                await context.write(command)
                if command.command_id:  # a receipt (no command_id) is the stream's own bookkeeping
                    self.port.publisher.publish_command(session.client_id, command)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            logger.info("stream.write_failed client_id=%s error=%s", session.client_id, type(exc).__name__)
            session.close(CLIENT_GONE)
        finally:
            session.writer_done()


def _consume_close_cancel(session: StreamSession, delivered: bool) -> bool:
    """Whether only session.close() cancelled the reading (current) task; that cancellation is then
    withdrawn (Task.uncancel), so it neither ends the RPC as cancelled nor lingers for a later await.
    `delivered` is False when the task got past its reads without seeing the CancelledError."""
    task = asyncio.current_task()
    if not session.reader_cancelled or task is None or (not delivered and not task.cancelling()):
        return False
    return task.uncancel() == 0


async def _outcome(task: "asyncio.Future[T]") -> T | None:
    """The result of a shielded task once it has ended (None if it failed), however often we are cancelled."""
    while not task.done():
        try:
            await asyncio.wait([task])
        except asyncio.CancelledError:
            continue
    return None if task.cancelled() or task.exception() is not None else task.result()


async def isolated(work: Awaitable[T]) -> T:
    """Await `work` in a short-lived task, i.e. in a copy of the current context.

    Why: every sync_to_async call (ORM) copies asgiref's context-local storage back into the calling
    context, about 90 objects. Done in the RPC task itself, that copy would live as long as the stream
    (about 6 KB per idle stream); in a child task it is freed when the call returns.
    """
    return await asyncio.ensure_future(work)


def metadata_of(context: grpc.aio.ServicerContext) -> dict[str, str]:
    return {key: value for key, value in (context.invocation_metadata() or ()) if isinstance(value, str)}
