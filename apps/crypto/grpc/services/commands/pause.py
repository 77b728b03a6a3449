"""pause: the bot stops trading until resumed; `reason` tells its operator why."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .base_client import CommandResult, CryptoStreamingCommandClient

KIND = "pause"


def build_pause(reason: str = "") -> pb2.DjangoCommand:
    return pb2.DjangoCommand(pause=pb2.PauseClientCommand(reason=reason))


async def pause(client: CryptoStreamingCommandClient, client_id: str, reason: str = "", wait: bool = True,
                timeout: float | None = None) -> CommandResult:
    """CommandAck when wait, else SendCommandResponse."""
    return await client.dispatch(client_id, build_pause(reason), wait=wait, timeout=timeout)
