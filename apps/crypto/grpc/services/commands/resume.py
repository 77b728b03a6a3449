"""resume: a paused bot goes back to work; `message` is passed on to it."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .base_client import CommandResult, CryptoStreamingCommandClient

KIND = "resume"


def build_resume(message: str = "") -> pb2.DjangoCommand:
    return pb2.DjangoCommand(resume=pb2.ResumeClientCommand(message=message))


async def resume(client: CryptoStreamingCommandClient, client_id: str, message: str = "", wait: bool = True,
                 timeout: float | None = None) -> CommandResult:
    """CommandAck when wait, else SendCommandResponse."""
    return await client.dispatch(client_id, build_resume(message), wait=wait, timeout=timeout)
