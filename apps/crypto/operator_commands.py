"""Commands sent from web code (admin actions, HTTP API) through the same gRPC path as send_command.

Every command goes to CRYPTO_GRPC_TARGET as SendCommandToClient (wait=False) or ExecuteCommandSync
(wait=True), and a command to many clients as ONE BroadcastCommand (run_broadcast), with an operator
token, so the serving replica records, routes and times it exactly as it does for any other operator.
Target and token are read from the environment on every call (not frozen at import like config.env.ENV)
so tests and long-lived web processes can change them.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.commands import (
    BroadcastOutcome,
    CommandClientError,
    CryptoStreamingCommandClient,
    build_command,
    default_target,
    default_token,
)

TARGET_ENV = "CRYPTO_GRPC_TARGET"
CONCURRENCY = 16  # commands in flight at once for one batch (an admin action on many clients)


def command_target() -> str:
    """CRYPTO_GRPC_TARGET as the environment says now, else the configured default."""
    return os.environ.get(TARGET_ENV) or default_target()


@dataclass(frozen=True)
class CommandRequest:
    client_id: str
    kind: str
    params: Mapping[str, Any] = field(default_factory=dict)
    wait: bool = True
    timeout: float | None = None  # delivery (wait=False) or ack (wait=True) seconds; None: client default


@dataclass(frozen=True)
class CommandReply:
    """What came back: the bot's ack (wait=True) or the delivery confirmation (wait=False)."""

    client_id: str
    kind: str
    command_id: str
    wait: bool
    success: bool  # the ack's success, or "reached the bot's live stream"
    message: str = ""
    error: str = ""
    current_status: str | None = None  # ClientStatus name from the ack; None without one

    def as_ack(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "success": self.success, "message": self.message,
                "error": self.error, "current_status": self.current_status}

    def as_delivery(self) -> dict[str, Any]:
        return {"command_id": self.command_id, "delivered": self.success, "error": self.error}


CommandResult = CommandReply | CommandClientError


def prepare(request: CommandRequest) -> pb2.DjangoCommand:
    """The command message; ValueError for an unknown kind or a parameter it cannot take."""
    try:
        return build_command(request.kind, **request.params)
    except TypeError as exc:  # a value of the wrong type, rejected by protobuf
        raise ValueError(f"{request.kind}: {exc}") from None


def _from_ack(request: CommandRequest, command: pb2.DjangoCommand, ack: common_pb2.CommandAck) -> CommandReply:
    return CommandReply(request.client_id, request.kind, ack.command_id or command.command_id, True, ack.success,
                        ack.message, ack.error, common_pb2.ClientStatus.Name(ack.current_status))


def _from_delivery(request: CommandRequest, command: pb2.DjangoCommand,
                   response: pb2.SendCommandResponse) -> CommandReply:
    # The client sends a copy and the server names an id-less command: the id is the response's.
    return CommandReply(request.client_id, request.kind, response.command_id or command.command_id, False,
                        response.success, error=response.error)


# result message type -> how it becomes a CommandReply
_REPLIES: Mapping[type, Callable[[CommandRequest, pb2.DjangoCommand, Any], CommandReply]] = {
    common_pb2.CommandAck: _from_ack,
    pb2.SendCommandResponse: _from_delivery,
}


async def run_command(client: CryptoStreamingCommandClient, request: CommandRequest,
                      command: pb2.DjangoCommand) -> CommandReply:
    """One prepared command; raises CommandClientError when the RPC itself fails."""
    result = await client.dispatch(request.client_id, command, wait=request.wait, timeout=request.timeout)
    return _REPLIES[type(result)](request, command, result)


async def run_commands(requests: Sequence[CommandRequest], *, target: str | None = None, token: str | None = None,
                       concurrency: int = CONCURRENCY) -> list[CommandResult]:
    """Every request, at most `concurrency` at a time, over one channel; results in request order.

    All commands are built before any is sent, so a bad one (ValueError) sends none.
    """
    commands = [prepare(request) for request in requests]
    limit = asyncio.Semaphore(concurrency)

    async def one(client: CryptoStreamingCommandClient, request: CommandRequest,
                  command: pb2.DjangoCommand) -> CommandResult:
        async with limit:
            try:
                return await run_command(client, request, command)
            except CommandClientError as exc:
                return exc

    client_token = default_token() if token is None else token
    async with CryptoStreamingCommandClient.from_env(target or command_target(), client_token) as client:
        return list(await asyncio.gather(*(one(client, r, c) for r, c in zip(requests, commands, strict=True))))


def run_commands_sync(requests: Sequence[CommandRequest], *, target: str | None = None,
                      token: str | None = None) -> list[CommandResult]:
    """Blocking run_commands for sync views; call from a thread without a running event loop."""
    return asyncio.run(run_commands(requests, target=target, token=token))


@dataclass(frozen=True)
class BroadcastReply:
    """A whole BroadcastCommand: each targeted client's reply (as CommandReply) and the summary's counts."""

    broadcast_id: str
    kind: str
    replies: list[CommandReply]  # one per targeted client, in the order they arrived
    targeted: int
    acked: int
    failed: int

    def as_dict(self) -> dict[str, Any]:
        return {"broadcast_id": self.broadcast_id,
                "results": [{"client_id": r.client_id, **r.as_ack()} for r in self.replies],
                "summary": {"targeted": self.targeted, "acked": self.acked, "failed": self.failed}}


def _from_outcome(kind: str, command: pb2.DjangoCommand, outcome: BroadcastOutcome) -> BroadcastReply:
    replies = [CommandReply(result.client_id, kind, result.ack.command_id, True, result.ack.success,
                            result.ack.message, result.ack.error,
                            common_pb2.ClientStatus.Name(result.ack.current_status))
               for result in outcome.results]
    summary = outcome.summary
    if summary is None:  # the stream ended without its summary: count what came
        acked = sum(reply.success for reply in replies)
        return BroadcastReply(command.command_id, kind, replies, len(replies), acked, len(replies) - acked)
    return BroadcastReply(summary.broadcast_id, kind, replies, summary.targeted, summary.acked, summary.failed)


async def run_broadcast(kind: str, params: Mapping[str, Any], client_selector: pb2.ClientSelector, *,
                        timeout: float | None = None, target: str | None = None,
                        token: str | None = None) -> BroadcastReply:
    """ONE BroadcastCommand of `kind` to the clients the selector matches, waiting up to `timeout` for acks.

    ValueError for a bad kind or parameter (nothing sent); CommandClientError when the RPC itself fails
    (INVALID_ARGUMENT for a malformed selector, UNAVAILABLE, ...).
    """
    command = prepare(CommandRequest("", kind, params))
    client_token = default_token() if token is None else token
    async with CryptoStreamingCommandClient.from_env(target or command_target(), client_token) as client:
        outcome = await client.broadcast(client_selector, command, timeout=timeout)
    return _from_outcome(kind, command, outcome)


def run_broadcast_sync(kind: str, params: Mapping[str, Any], client_selector: pb2.ClientSelector, *,
                       timeout: float | None = None, target: str | None = None,
                       token: str | None = None) -> BroadcastReply:
    """Blocking run_broadcast for sync views; call from a thread without a running event loop."""
    return asyncio.run(run_broadcast(kind, params, client_selector, timeout=timeout, target=target, token=token))
