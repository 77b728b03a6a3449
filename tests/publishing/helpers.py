"""Message builders and a polling helper shared by the publishing tests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from apps.crypto.grpc.generated import common_pb2, crypto_streaming_pb2 as pb
from apps.crypto.publishing import PublisherConfig

# Small waits everywhere so failure paths finish in milliseconds, generous ceilings so a loaded
# 2-core machine does not turn them into flakes.
FAST = {
    "flush_interval": 0.005,
    "request_timeout": 1.0,
    "max_retries": 3,
    "backoff_base": 0.01,
    "backoff_max": 0.05,
    "breaker_threshold": 3,
    "breaker_cooldown": 0.3,
    "auth_retry_interval": 0.3,
    "close_timeout": 1.0,
}
REPLICA = "replica-a"


def fast_config(url: str, key: str, **overrides: object) -> PublisherConfig:
    return PublisherConfig(api_url=url, api_key=key, **{**FAST, **overrides})  # type: ignore[arg-type]


def wallet_message(client_id: str, n: int, *, stamped: bool = True) -> pb.ClientMessage:
    message = pb.ClientMessage(client_id=client_id, message_id=f"{client_id}-m{n}")
    if stamped:
        message.timestamp.FromSeconds(1_700_000_000 + n)
    update = message.wallet_update
    update.wallet_id = f"w-{n}"
    update.symbol = "BTC"
    update.balance_available = "0.10000000"
    update.balance_locked = "12345678901234567890.000000000000000001"
    return message


def ack_message(client_id: str, command_id: str) -> pb.ClientMessage:
    message = pb.ClientMessage(client_id=client_id, message_id=f"{client_id}-ack-{command_id}")
    message.command_ack.command_id = command_id
    message.command_ack.success = True
    return message


def ping_command(command_id: str, sequence: int = 1) -> pb.DjangoCommand:
    command = pb.DjangoCommand(command_id=command_id)
    command.ping.sequence = sequence
    command.timestamp.FromSeconds(1_700_000_000)
    return command


def command_ack(command_id: str) -> common_pb2.CommandAck:
    return common_pb2.CommandAck(
        command_id=command_id, success=True, message="pong",
        current_status=common_pb2.CLIENT_STATUS_ACTIVE,
    )


async def eventually(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until `predicate()` holds; the ceiling is for hangs, not for pacing."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.005)
