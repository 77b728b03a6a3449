"""ping: a round trip through the bot; `sequence` lets the caller match answers to pings."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .base_client import CommandResult, CryptoStreamingCommandClient

KIND = "ping"
INT32_MAX = 2**31 - 1


def build_ping(sequence: int = 0) -> pb2.DjangoCommand:
    if not 0 <= sequence <= INT32_MAX:
        raise ValueError(f"sequence must be between 0 and {INT32_MAX}, got {sequence}")
    return pb2.DjangoCommand(ping=pb2.PingCommand(sequence=sequence))


async def ping(client: CryptoStreamingCommandClient, client_id: str, sequence: int = 0, wait: bool = True,
               timeout: float | None = None) -> CommandResult:
    """CommandAck when wait, else SendCommandResponse."""
    return await client.dispatch(client_id, build_ping(sequence), wait=wait, timeout=timeout)
