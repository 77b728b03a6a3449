"""A reusable bot-side client for CryptoStreamingService.ConnectClient.

It registers, heartbeats, answers each DjangoCommand through a handler table, forwards the bot's own
messages (wallet updates, status, logs...) and reconnects with jittered exponential backoff. Copy this
file and reconnect.py into a bot: they need only grpcio, protobuf and the generated modules.

    bot = BotClient("localhost:50051", "bot-1", api_key, handlers={"ping": on_ping})
    runner = asyncio.create_task(bot.run())       # raises BotRejected on a bad key
    await bot.connected.wait()
    await bot.send(pb2.WalletUpdate(...))
    await bot.stop()

Handlers run one at a time in arrival order (so pause/resume cannot overtake each other); keep them
short or hand long work to a task of your own.

A command_id names one command and stays the same when the server delivers it again (`retry=True`: it
re-sent the command after the replica holding this bot's stream was lost, so the first copy may have
been executed already). The client remembers the acks of the last `remember_commands` executed
command_ids and answers a command_id it has already executed with that same ack again, without running
the handler, whether or not `retry` is set. A handler cut short by the end of its stream never finished,
so it is not remembered and a re-delivery runs it again: make handlers safe to restart.

Receipts (`BotClient(..., receipts=True, outbox_limit=10_000)`) make sending at-least-once and storing
exactly-once: the registration asks for them (wants_receipts), every message carries a message_id, and
each message sent is kept in a bounded outbox (ReceiptOutbox) until a MessageReceipt from the server
says it is durably stored (or durably rejected). After a reconnect the unreceipted ones are written
again, same message_id, right after the registration and before anything new; the server stores each
(client_id, message_id) once. send() waits while the outbox is full. Heartbeats and command acks are
not kept (a heartbeat is superseded, a command is re-sent by the server). A receipt is not a command:
no handler runs and no ack is sent; handlers run in a task of their own, so receipts keep flowing
while one runs (and waits in send() for room). `bot.unreceipted` counts what awaits a receipt; call
`await bot.all_receipted(timeout)` before stop() to leave nothing behind, or save
`bot.unreceipted_messages()` and send() them again from the next run (same message_id: stored once).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import Message

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc

from .reconnect import Backoff, RetryState, is_fatal

logger = logging.getLogger(__name__)

CommandHandler = Callable[[pb2.DjangoCommand], Awaitable[common_pb2.CommandAck]]

API_KEY_HEADER = "x-api-key"
REMEMBER_COMMANDS = 10_000  # executed command_ids (and their acks) a bot keeps to ignore re-deliveries
OUTBOX_LIMIT = 10_000  # with receipts on: messages sent and not yet receipted before send() waits
COMMAND_BACKLOG = 1000  # with receipts on: commands read ahead of a running handler, so receipts keep flowing
MAX_ERROR_CHARS = 1000  # an ack's error text; the server refuses overlong fields
EXPECTED_STREAM_ERRORS = (grpc.aio.AioRpcError, asyncio.InvalidStateError)  # the stream ended under us

# ClientMessage payload type (full name) -> its oneof field, so send() accepts a bare WalletUpdate etc.
PAYLOAD_FIELDS: Mapping[str, str] = {
    field.message_type.full_name: field.name
    for field in pb2.ClientMessage.DESCRIPTOR.oneofs_by_name["payload"].fields
}


class BotRejected(Exception):
    """The server refused this bot for a reason retrying cannot fix (bad key, wrong client_id...)."""

    def __init__(self, client_id: str, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"server rejected client_id {client_id!r}: {code.name}: {details}")
        self.client_id, self.code, self.details = client_id, code, details


# ---------------------------------------------------------------------------- messages (pure)


def command_ack(success: bool = True, message: str = "", error: str = "",
                status: common_pb2.ClientStatus = common_pb2.CLIENT_STATUS_UNKNOWN) -> common_pb2.CommandAck:
    """What a handler returns; command_id and timestamp are filled in by the client."""
    return common_pb2.CommandAck(success=success, message=message, error=error[:MAX_ERROR_CHARS],
                                 current_status=status)


def complete_ack(ack: common_pb2.CommandAck, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
    """A copy of ack answering `command`: its command_id always, a timestamp when missing."""
    filled = common_pb2.CommandAck()
    filled.CopyFrom(ack)
    filled.command_id = command.command_id
    if not filled.HasField("timestamp"):
        filled.timestamp.GetCurrentTime()
    return filled


def stamp_message(client_id: str, message: pb2.ClientMessage) -> pb2.ClientMessage:
    """Fill client_id, message_id and timestamp in place; a message for another client is an error."""
    if message.client_id and message.client_id != client_id:
        raise ValueError(f"message is for client_id {message.client_id!r}, this bot is {client_id!r}")
    if message.WhichOneof("payload") is None:
        raise ValueError("ClientMessage carries no payload")
    message.client_id = client_id
    if not message.message_id:
        message.message_id = uuid.uuid4().hex
    if not message.HasField("timestamp"):
        message.timestamp.GetCurrentTime()
    return message


def wrap_payload(client_id: str, payload: Message) -> pb2.ClientMessage:
    """A stamped ClientMessage from either a ClientMessage (copied) or a bare payload such as WalletUpdate."""
    if isinstance(payload, pb2.ClientMessage):
        message = pb2.ClientMessage()
        message.CopyFrom(payload)
        return stamp_message(client_id, message)
    field = PAYLOAD_FIELDS.get(payload.DESCRIPTOR.full_name)
    if field is None:
        raise TypeError(f"{type(payload).__name__} is not a ClientMessage payload; "
                        f"expected one of {', '.join(sorted(PAYLOAD_FIELDS))}")
    return stamp_message(client_id, pb2.ClientMessage(**{field: payload}))


# ---------------------------------------------------------------------------- outbox


class Outbox:
    """Messages waiting for the stream's single writer: heartbeats first, then one FIFO for the rest.

    Acks share the bounded FIFO (an asyncio.Queue; send() waits when it is full) with the app's own
    messages, so an ack never overtakes the wallet updates its handler sent. A message whose write
    failed stays first in line for the next connection.
    """

    def __init__(self, limit: int) -> None:
        self._control: deque[pb2.ClientMessage] = deque()
        self._app: asyncio.Queue[pb2.ClientMessage] = asyncio.Queue(limit)
        self._ready = asyncio.Event()
        self._unsent: pb2.ClientMessage | None = None
        self._closed = False

    def push_control(self, message: pb2.ClientMessage) -> None:
        self._control.append(message)
        self._ready.set()

    async def put(self, message: pb2.ClientMessage) -> None:
        await self._app.put(message)
        self._ready.set()

    async def next(self) -> pb2.ClientMessage | None:
        """The next message to write, or None once closed and empty."""
        while self._unsent is None:
            self._ready.clear()
            self._unsent = self._pop()
            if self._unsent is None and self._closed:
                return None
            if self._unsent is None:
                await self._ready.wait()
        return self._unsent

    def _pop(self) -> pb2.ClientMessage | None:
        if self._control:
            return self._control.popleft()
        return None if self._app.empty() else self._app.get_nowait()

    def sent(self) -> None:
        self._unsent = None

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def __len__(self) -> int:
        return len(self._control) + self._app.qsize() + (self._unsent is not None)


# ---------------------------------------------------------------------------- receipts (pure)


class OutboxClosed(RuntimeError):
    """The bot is stopping: the receipt outbox takes no new message."""


class ReceiptOutbox:
    """Messages sent but not yet receipted, insertion-ordered by message_id; at most `limit` of them.

    Pure bookkeeping for ClientRegistration.wants_receipts (no gRPC here): BotClient adds a message
    before it is written, marks it written once a stream took it, writes the written ones again right
    after each reconnect (`to_resend()`, in the order they were added) and forgets them when a
    MessageReceipt names them (`ack()`). A full outbox makes add() wait for room: nothing is dropped.
    """

    def __init__(self, limit: int = OUTBOX_LIMIT) -> None:
        if limit < 1:
            raise ValueError(f"outbox limit must be >= 1, got {limit}")
        self.limit = limit
        self._messages: dict[str, pb2.ClientMessage] = {}  # message_id -> message, in the order added
        self._written: set[str] = set()  # taken by a stream at least once: resent after a reconnect
        self._changed = asyncio.Event()
        self._closed = False

    async def add(self, message: pb2.ClientMessage, timeout: float | None = None) -> None:
        """Keep `message` until it is receipted; waits while the outbox is full (TimeoutError after `timeout`)."""
        message_id = message.message_id
        if not message_id:
            raise ValueError("a message awaiting a receipt needs a message_id")
        if message_id in self._messages:
            raise ValueError(f"message_id {message_id!r} is already awaiting a receipt")
        async with asyncio.timeout(timeout):
            while len(self._messages) >= self.limit and not self._closed:
                await self._wait_change()
        if self._closed:
            raise OutboxClosed("the outbox is closed: the bot is stopping")
        if message_id in self._messages:
            raise ValueError(f"message_id {message_id!r} is already awaiting a receipt")
        self._messages[message_id] = message

    def ack(self, message_ids: Iterable[str]) -> int:
        """Forget the receipted messages; ids not (or no longer) here are ignored. Returns how many were here."""
        removed = 0
        for message_id in message_ids:
            if self._messages.pop(message_id, None) is not None:
                self._written.discard(message_id)
                removed += 1
        if removed:
            self._wake()
        return removed

    def discard(self, message_id: str) -> None:
        """Forget a message that was never handed to a stream (its send was cancelled)."""
        self.ack((message_id,))

    def written(self, message_id: str) -> None:
        """A stream took this message: if no receipt comes on that stream, it is resent on the next."""
        if message_id in self._messages:
            self._written.add(message_id)

    def to_resend(self) -> list[pb2.ClientMessage]:
        """What a new stream writes right after its registration: the written, unreceipted messages, in order.

        Those never written yet are still queued behind them, so the stream sends the whole outbox in order.
        """
        return [message for message_id, message in self._messages.items() if message_id in self._written]

    def pending(self) -> list[pb2.ClientMessage]:
        """Every message awaiting a receipt, in the order added."""
        return list(self._messages.values())

    async def wait_empty(self, timeout: float | None = None) -> bool:
        """True once every message is receipted; False after `timeout` or when closed with messages left."""
        try:
            async with asyncio.timeout(timeout):
                while self._messages and not self._closed:
                    await self._wait_change()
        except TimeoutError:
            pass
        return not self._messages

    def close(self) -> None:
        """Refuse new messages and release every waiter; what is here stays readable (pending())."""
        self._closed = True
        self._wake()

    @property
    def full(self) -> bool:
        return len(self._messages) >= self.limit

    def __contains__(self, message_id: object) -> bool:
        return message_id in self._messages

    def __len__(self) -> int:
        return len(self._messages)

    async def _wait_change(self) -> None:
        self._changed.clear()
        await self._changed.wait()

    def _wake(self) -> None:
        self._changed.set()  # wakes every waiter; each re-checks its own condition


# ---------------------------------------------------------------------------- executed commands


class ExecutedCommands:
    """The acks sent for the last `limit` executed command_ids; the least recently seen is forgotten first.

    Bounded memory for de-duplication: acks are small (the server refuses oversize fields), so the
    default 10,000 entries stay in the low megabytes. limit 0 remembers nothing.
    """

    def __init__(self, limit: int = REMEMBER_COMMANDS) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self._acks: OrderedDict[str, common_pb2.CommandAck] = OrderedDict()

    def ack_for(self, command_id: str) -> common_pb2.CommandAck | None:
        """The ack sent for command_id, or None when it was never executed (or is forgotten); refreshes it."""
        ack = self._acks.get(command_id)
        if ack is not None:
            self._acks.move_to_end(command_id)
        return ack

    def remember(self, command_id: str, ack: common_pb2.CommandAck) -> None:
        if not command_id or self.limit == 0:
            return
        self._acks[command_id] = ack
        self._acks.move_to_end(command_id)
        while len(self._acks) > self.limit:
            self._acks.popitem(last=False)

    def __contains__(self, command_id: object) -> bool:
        return command_id in self._acks

    def __len__(self) -> int:
        return len(self._acks)


# ---------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class SessionEnd:
    """How one stream ended, and how long it had been accepted (None: never)."""

    code: grpc.StatusCode
    details: str
    connected_for: float | None


class BotClient:
    """One bot's connection to CryptoStreamingService; run() once, stop() to end it."""

    def __init__(self, target: str, client_id: str, api_key: str | None = None, *,
                 registration: pb2.ClientRegistration | None = None, heartbeat_interval: float = 30.0,
                 handlers: Mapping[str, CommandHandler] | None = None, backoff: Backoff = Backoff(),
                 stable_after: float = 10.0, handler_timeout: float | None = 60.0, outbound_limit: int = 1000,
                 stop_grace: float = 2.0, credentials: grpc.ChannelCredentials | None = None,
                 channel_options: Sequence[tuple[str, Any]] = (), remember_commands: int = REMEMBER_COMMANDS,
                 receipts: bool = False, outbox_limit: int = OUTBOX_LIMIT) -> None:
        if not client_id:
            raise ValueError("client_id must not be empty")
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        self.target, self.client_id = target, client_id
        self.registration = registration or pb2.ClientRegistration(client_name=client_id, client_type="bot")
        if receipts:  # on a copy: the caller's registration is left alone
            wanting = pb2.ClientRegistration()
            wanting.CopyFrom(self.registration)
            wanting.wants_receipts = True
            self.registration = wanting
        self.heartbeat_interval, self.handler_timeout, self.stop_grace = heartbeat_interval, handler_timeout, stop_grace
        self.handlers: dict[str, CommandHandler] = dict(handlers or {})
        self._retry = RetryState(backoff, stable_after)
        self._metadata = ((API_KEY_HEADER, api_key),) if api_key else ()
        self._credentials, self._channel_options = credentials, tuple(channel_options)
        self._outbox = Outbox(outbound_limit)
        self.executed = ExecutedCommands(remember_commands)  # command_id -> the ack sent, to ignore re-deliveries
        # with receipts on: sent messages kept until the server confirms them, resent after each reconnect
        self._receipts = ReceiptOutbox(outbox_limit) if receipts else None
        self._stop, self._finished = asyncio.Event(), asyncio.Event()
        self._started = False
        self._accepted_at: float | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.commands_handled = 0
        self.commands_failed = 0
        self.commands_repeated = 0  # deliveries of an already executed command_id, acked again without running
        self.receipts_received = 0  # MessageReceipts read (any bot; only one with receipts=True tracks them)
        self.messages_receipted = 0  # messages the receipts removed from the outbox
        self.messages_resent = 0  # unreceipted messages written again on a new stream

    # -------------------------------------------------------------- public API

    async def run(self) -> None:
        """Connect and serve until stop(); raises BotRejected when the server refuses this bot."""
        if self._started:
            raise RuntimeError("BotClient.run() may be called only once; create a new BotClient")
        self._started = True
        try:
            await self._run_sessions()
        finally:
            self._finished.set()
            logger.info("bot.stopped client_id=%s connects=%d commands_handled=%d",
                        self.client_id, self.connects, self.commands_handled)

    async def send(self, payload: Message, timeout: float | None = None) -> None:
        """Queue a ClientMessage or a bare payload (WalletUpdate, StatusUpdate...); waits while the queue is full.

        With receipts on, the message (its message_id kept, or a new uuid) is also kept until a receipt
        names it, and send() waits while `outbox_limit` messages await one. `timeout` bounds the whole
        wait (TimeoutError; the message is then not sent). Raises RuntimeError once the bot is stopped.
        """
        if self._stop.is_set():
            raise RuntimeError("BotClient is stopped")
        message = wrap_payload(self.client_id, payload)
        async with asyncio.timeout(timeout):
            if self._receipts is None:
                await self._outbox.put(message)
                return
            await self._receipts.add(message)  # recorded before it can be written, so a receipt always finds it
            try:
                await self._outbox.put(message)
            except BaseException:
                self._receipts.discard(message.message_id)
                raise

    @property
    def unreceipted(self) -> int:
        """Messages sent (or queued) and not yet receipted; always 0 with receipts off."""
        return 0 if self._receipts is None else len(self._receipts)

    def unreceipted_messages(self) -> list[pb2.ClientMessage]:
        """The messages still awaiting a receipt, in order: save them at exit and send() them again later
        (same message_id, so the server stores each once)."""
        return [] if self._receipts is None else self._receipts.pending()

    async def all_receipted(self, timeout: float | None = None) -> bool:
        """Wait until every message sent is receipted: True then, False after `timeout` or once stopped with
        messages left. Call it before stop() to leave nothing behind."""
        return True if self._receipts is None else await self._receipts.wait_empty(timeout)

    def request_stop(self) -> None:
        """Ask run() to finish (safe from signal handlers); queued messages are flushed for stop_grace seconds."""
        self._stop.set()
        self._outbox.close()
        if self._receipts is not None:
            self._receipts.close()  # a send() waiting for room fails; nothing new is kept

    async def stop(self) -> None:
        """request_stop() and wait until run() has returned."""
        self.request_stop()
        if self._started:
            await self._finished.wait()

    @property
    def pending(self) -> int:
        """Messages queued but not yet written (the write queue, not the receipt outbox)."""
        return len(self._outbox)

    # -------------------------------------------------------------- reconnect loop

    async def _run_sessions(self) -> None:
        while not self._stop.is_set():
            logger.info("bot.connecting client_id=%s target=%s attempt=%d",
                        self.client_id, self.target, self._retry.failures + 1)
            end = await self._session()
            if end is None:
                return
            if is_fatal(end.code):
                logger.error("bot.rejected client_id=%s code=%s details=%s", self.client_id, end.code.name, end.details)
                raise BotRejected(self.client_id, end.code, end.details)
            delay = self._retry.next_delay(end.connected_for)
            logger.info("bot.disconnected client_id=%s code=%s details=%s retry_in=%.2f",
                        self.client_id, end.code.name, end.details, delay)
            await self._sleep_unless_stopped(delay)

    async def _sleep_unless_stopped(self, delay: float) -> None:
        try:
            await asyncio.wait_for(self._stop.wait(), delay)
        except TimeoutError:
            pass

    # -------------------------------------------------------------- one stream

    async def _session(self) -> SessionEnd | None:
        """One ConnectClient stream on a fresh channel (so our backoff, not the channel's, paces retries)."""
        channel = self._open_channel()
        try:
            call = pb2_grpc.CryptoStreamingServiceStub(channel).ConnectClient(metadata=self._metadata)
            return await self._serve(call)
        finally:
            await channel.close()

    def _open_channel(self) -> grpc.aio.Channel:
        if self._credentials is not None:
            return grpc.aio.secure_channel(self.target, self._credentials, options=self._channel_options)
        return grpc.aio.insecure_channel(self.target, options=self._channel_options)

    async def _serve(self, call: grpc.aio.StreamStreamCall) -> SessionEnd | None:
        """Read, write and heartbeat until the stream ends or stop() is asked; None means stopped."""
        self._accepted_at = None
        # With receipts on, handlers run in their own task: a handler whose send() waits for room in the
        # outbox must not keep the reader from the receipts that make the room.
        commands: asyncio.Queue[pb2.DjangoCommand] | None = None
        handling: list[asyncio.Task[None]] = []
        if self._receipts is not None:
            commands = asyncio.Queue(COMMAND_BACKLOG)
            handling.append(self._spawn(self._handle_queued(commands), "handle"))
        reader = self._spawn(self._read(call, commands), "read")
        writer = self._spawn(self._write(call), "write")
        stopping = self._spawn(self._stop.wait(), "stop")
        helpers = [self._spawn(self._heartbeat(), "heartbeat"), self._spawn(self._watch_accept(call), "accept")]
        try:
            await asyncio.wait([reader, writer, stopping, *handling], return_when=asyncio.FIRST_COMPLETED)
            if self._stop.is_set():
                await asyncio.wait([reader, writer], timeout=self.stop_grace)  # flush, half-close, server ends
                return None
            return await self._ending(call, reader, writer, *handling)
        finally:
            await _cancel_all([reader, writer, stopping, *handling, *helpers])
            call.cancel()
            self.connected.clear()

    def _spawn(self, coro: Coroutine[Any, Any, Any], role: str) -> asyncio.Task[Any]:
        return asyncio.create_task(coro, name=f"bot-{role}-{self.client_id}")

    async def _ending(self, call: grpc.aio.StreamStreamCall, *tasks: asyncio.Task[None]) -> SessionEnd:
        """The stream's final status; a bug in this client is raised instead of looping as a disconnect."""
        for task in tasks:
            error = task.exception() if task.done() and not task.cancelled() else None
            if error is not None and not isinstance(error, EXPECTED_STREAM_ERRORS):
                raise error
        call.cancel()  # no-op when already finished; otherwise the status becomes CANCELLED
        code, details = await call.code(), await call.details()
        return SessionEnd(code, details or "", self._connected_for())

    async def _read(self, call: grpc.aio.StreamStreamCall,
                    commands: asyncio.Queue[pb2.DjangoCommand] | None = None) -> None:
        """Receipts are taken at once; commands are handled here, or queued for _handle_queued (receipts on)."""
        async for command in call:
            self._mark_connected()
            if command.WhichOneof("command") == "receipt":
                self._on_receipt(command.receipt)
            elif commands is None:
                await self._handle(command)
            else:
                await commands.put(command)

    async def _handle_queued(self, commands: asyncio.Queue[pb2.DjangoCommand]) -> None:
        """One handler at a time, in arrival order, while the reader goes on taking receipts."""
        while True:
            await self._handle(await commands.get())

    def _on_receipt(self, receipt: pb2.MessageReceipt) -> None:
        """Not a command: no handler, no ack. Ids this bot no longer holds (a duplicate's receipt) are ignored."""
        self.receipts_received += 1
        removed = 0 if self._receipts is None else self._receipts.ack(receipt.message_ids)
        self.messages_receipted += removed
        logger.debug("bot.receipt client_id=%s ids=%d removed=%d unreceipted=%d",
                     self.client_id, len(receipt.message_ids), removed, self.unreceipted)

    async def _write(self, call: grpc.aio.StreamStreamCall) -> None:
        await call.write(self._envelope(register=self.registration))
        await self._resend(call)
        while (message := await self._outbox.next()) is not None:
            await call.write(message)
            self._outbox.sent()
            if self._receipts is not None:
                self._receipts.written(message.message_id)
        await call.done_writing()

    async def _resend(self, call: grpc.aio.StreamStreamCall) -> None:
        """Right after the registration: what earlier streams took and never receipted, in the original order.

        The messages not yet written are still queued behind these, so the outbox goes out whole and in order.
        """
        if self._receipts is None:
            return
        again = self._receipts.to_resend()
        if again:
            logger.info("bot.resending client_id=%s messages=%d unreceipted=%d",
                        self.client_id, len(again), len(self._receipts))
        for message in again:
            if message.message_id in self._receipts:  # a late receipt may have come meanwhile
                await call.write(message)
                self.messages_resent += 1

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self._outbox.push_control(self._envelope(heartbeat=pb2.HeartbeatUpdate()))

    async def _watch_accept(self, call: grpc.aio.StreamStreamCall) -> None:
        """Server headers on a live call mean the stream was accepted (a refusal arrives as trailers only)."""
        await call.initial_metadata()
        await asyncio.sleep(0)  # let a trailers-only refusal mark the call done first
        if not call.done():
            self._mark_connected()

    def _mark_connected(self) -> None:
        if self._accepted_at is not None:
            return
        self._accepted_at = asyncio.get_running_loop().time()
        self.connects += 1
        self.connected.set()
        logger.info("bot.connected client_id=%s target=%s connects=%d", self.client_id, self.target, self.connects)

    def _connected_for(self) -> float | None:
        if self._accepted_at is None:
            return None
        return asyncio.get_running_loop().time() - self._accepted_at

    # -------------------------------------------------------------- commands

    async def _handle(self, command: pb2.DjangoCommand) -> None:
        kind = command.WhichOneof("command") or ""
        earlier = self.executed.ack_for(command.command_id) if command.command_id else None
        if earlier is not None:  # delivered again (typically retry=True after a lost replica): never run twice
            self.commands_repeated += 1
            logger.info("bot.command_repeated client_id=%s kind=%s command_id=%s retry=%s success=%s",
                        self.client_id, kind or "none", command.command_id, command.retry, earlier.success)
            await self._outbox.put(self._envelope(command_ack=earlier))
            return
        ack = complete_ack(await self._answer(kind, command), command)
        self.executed.remember(command.command_id, ack)
        self.commands_handled += 1
        self.commands_failed += not ack.success
        logger.info("bot.command client_id=%s kind=%s command_id=%s retry=%s success=%s",
                    self.client_id, kind or "none", command.command_id, command.retry, ack.success)
        await self._outbox.put(self._envelope(command_ack=ack))

    async def _answer(self, kind: str, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        """The handler's ack; an unknown kind, an exception, a timeout or a wrong return type fail the ack."""
        handler = self.handlers.get(kind)
        if handler is None:
            return command_ack(False, error=f"no handler for command kind {kind or 'none'!r}")
        try:
            async with asyncio.timeout(self.handler_timeout) as deadline:
                result = await handler(command)
        except Exception as exc:
            return command_ack(False, error=_handler_error(exc, deadline.expired(), self.handler_timeout))
        if not isinstance(result, common_pb2.CommandAck):
            return command_ack(False, error=f"handler for {kind!r} returned {type(result).__name__}, not CommandAck")
        return result

    def _envelope(self, **payload: Message) -> pb2.ClientMessage:
        return stamp_message(self.client_id, pb2.ClientMessage(**payload))


def _handler_error(exc: Exception, expired: bool, timeout: float | None) -> str:
    if expired:
        return f"handler timed out after {timeout:g}s"
    logger.warning("bot.handler_failed error=%s", type(exc).__name__, exc_info=exc)
    return f"{type(exc).__name__}: {exc}"


async def _cancel_all(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel and await every task; a cancellation of the caller still propagates afterwards."""
    owned = list(tasks)
    for task in owned:
        task.cancel()
    await asyncio.gather(*owned, return_exceptions=True)
