"""request_status: the bot answers with its current status (and statistics when asked)."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .base_client import CommandResult, CryptoStreamingCommandClient

KIND = "request_status"


def build_request_status(include_stats: bool = False) -> pb2.DjangoCommand:
    return pb2.DjangoCommand(request_status=pb2.RequestStatusCommand(include_stats=include_stats))


async def request_status(client: CryptoStreamingCommandClient, client_id: str, include_stats: bool = False,
                         wait: bool = True, timeout: float | None = None) -> CommandResult:
    """CommandAck when wait, else SendCommandResponse."""
    return await client.dispatch(client_id, build_request_status(include_stats), wait=wait, timeout=timeout)
