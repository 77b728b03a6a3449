"""A generic async operator client for the SendCommandToClient / ExecuteCommandSync pair.

Service-neutral: a subclass names the stub and request classes (see base_client.py). Commands are
any message with `command_id` and `timestamp` fields; both are filled in here when missing.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import grpc
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

DEFAULT_TIMEOUT = 10.0  # seconds for SendCommandToClient (delivery confirmation)
DEFAULT_ACK_TIMEOUT = 15.0  # seconds a bot gets to answer ExecuteCommandSync
DEFAULT_ACK_MARGIN = 0.5  # extra seconds on the gRPC deadline so the server's "timed out" ack arrives first

ResponseT = TypeVar("ResponseT", bound=Message)
AckT = TypeVar("AckT", bound=Message)
ChannelOptions = Sequence[tuple[str, Any]]


class Command(Protocol):
    """What the client needs of a command message."""

    command_id: str

    @property
    def timestamp(self) -> Timestamp: ...

    def HasField(self, field_name: str) -> bool: ...  # noqa: N802 (protobuf API)


CommandT = TypeVar("CommandT", bound=Command)


class CommandClientError(Exception):
    """A command RPC failed: `code` is the gRPC status, `details` says what to do about it."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


# ---------------------------------------------------------------------------- pure helpers


def stamp(command: CommandT) -> CommandT:
    """Fill command_id (uuid4 hex) and timestamp in place when missing; returns the same command."""
    if not command.command_id:
        command.command_id = uuid.uuid4().hex
    if not command.HasField("timestamp"):
        command.timestamp.GetCurrentTime()
    return command


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


def ack_deadline(timeout: float, margin: float) -> float:
    """The gRPC deadline for ExecuteCommandSync: the ack wait plus a margin for the server to answer."""
    if timeout <= 0:
        raise ValueError(f"timeout must be > 0, got {timeout}")
    return timeout + margin


_HINTS: dict[grpc.StatusCode, str] = {
    grpc.StatusCode.UNAVAILABLE: "cannot reach the gRPC server at {target}",
    grpc.StatusCode.UNAUTHENTICATED: "operator token rejected by {target}; pass a token from CRYPTO_OPERATOR_TOKENS",
    grpc.StatusCode.PERMISSION_DENIED: "operator not allowed to send this command",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no answer from {target} within {deadline:g}s",
    grpc.StatusCode.UNIMPLEMENTED: "{target} does not serve this command RPC",
}


def client_error(exc: grpc.aio.AioRpcError, target: str, deadline: float) -> CommandClientError:
    """A CommandClientError whose details add a hint (when known) to what the server said."""
    code, server_details = exc.code(), exc.details() or ""
    hint = _HINTS.get(code, "")
    parts = [hint.format(target=target, deadline=deadline), server_details]
    return CommandClientError(code, " - ".join(part for part in parts if part) or code.name.lower())


# ---------------------------------------------------------------------------- the client


class StreamingCommandClient(Generic[CommandT, ResponseT, AckT]):
    """Sends commands to connected clients through one lazily opened grpc.aio channel.

    Use as `async with` or call close(); a client belongs to the event loop that first used it.
    """

    stub_class: ClassVar[type[Any]]  # generated *Stub taking a channel
    request_class: ClassVar[type[Message]]  # message with client_id and command fields

    def __init__(self, target: str, token: str = "", *, timeout: float = DEFAULT_TIMEOUT,
                 ack_timeout: float = DEFAULT_ACK_TIMEOUT, ack_margin: float = DEFAULT_ACK_MARGIN,
                 credentials: grpc.ChannelCredentials | None = None, channel_options: ChannelOptions = ()) -> None:
        if timeout <= 0 or ack_timeout <= 0 or ack_margin < 0:
            raise ValueError("timeout and ack_timeout must be > 0, ack_margin >= 0")
        self.target, self.timeout, self.ack_timeout, self.ack_margin = target, timeout, ack_timeout, ack_margin
        self._metadata = bearer_metadata(token)
        self._credentials, self._options = credentials, tuple(channel_options)
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    async def send(self, client_id: str, command: CommandT, timeout: float | None = None) -> ResponseT:
        """Deliver without waiting for the client's answer (SendCommandToClient)."""
        deadline = self.timeout if timeout is None else timeout
        return await self._call("SendCommandToClient", client_id, command, deadline)

    async def execute(self, client_id: str, command: CommandT, timeout: float | None = None) -> AckT:
        """Deliver and wait up to `timeout` seconds for the client's ack (ExecuteCommandSync)."""
        deadline = ack_deadline(self.ack_timeout if timeout is None else timeout, self.ack_margin)
        return await self._call("ExecuteCommandSync", client_id, command, deadline)

    async def dispatch(self, client_id: str, command: CommandT, *, wait: bool,
                       timeout: float | None = None) -> ResponseT | AckT:
        """execute() when wait, else send(): what the per-command helpers call."""
        if wait:
            return await self.execute(client_id, command, timeout)
        return await self.send(client_id, command, timeout)

    async def _call(self, method: str, client_id: str, command: CommandT, deadline: float) -> Any:
        request = self.request_class(client_id=client_id, command=stamp(command))
        rpc: Callable[..., Awaitable[Any]] = getattr(self._get_stub(), method)
        try:
            return await rpc(request, timeout=deadline, metadata=self._metadata)
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc, self.target, deadline) from None

    def _get_stub(self) -> Any:
        if self._stub is None:
            self._channel = self._open_channel()
            self._stub = self.stub_class(self._channel)
        return self._stub

    def _open_channel(self) -> grpc.aio.Channel:
        if self._credentials is not None:
            return grpc.aio.secure_channel(self.target, self._credentials, options=self._options)
        return grpc.aio.insecure_channel(self.target, options=self._options)

    async def close(self) -> None:
        channel, self._channel, self._stub = self._channel, None, None
        if channel is not None:
            await channel.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
