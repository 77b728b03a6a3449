"""The command client bound to crypto.CryptoStreamingService, and where its defaults come from."""

from __future__ import annotations

import os
from typing import Any, Self

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc
from config.env import ENV, split_list

from ..config import CryptoStreamingConfig
from .base import StreamingCommandClient
from .sync import SyncCommandClient

TOKEN_ENV = "CRYPTO_OPERATOR_TOKEN"
TOKENS_ENV = "CRYPTO_OPERATOR_TOKENS"

CommandResult = common_pb2.CommandAck | pb2.SendCommandResponse


def default_target() -> str:
    """CRYPTO_GRPC_TARGET (default localhost:50051)."""
    return ENV.grpc_target


def default_token() -> str:
    """CRYPTO_OPERATOR_TOKEN when set, else the first of CRYPTO_OPERATOR_TOKENS, else none.

    Read from the environment on every call, so long-lived web processes and tests see changes.
    """
    return os.environ.get(TOKEN_ENV) or next(iter(split_list(os.environ.get(TOKENS_ENV, ""))), "")


def default_ack_timeout() -> float:
    """The server's ack timeout (CRYPTO_ACK_TIMEOUT), so both sides wait equally long by default."""
    return CryptoStreamingConfig.from_env(os.environ).ack_timeout


class CryptoStreamingCommandClient(
    StreamingCommandClient[pb2.DjangoCommand, pb2.SendCommandResponse, common_pb2.CommandAck]
):
    """Sends DjangoCommands to bots connected to CryptoStreamingService."""

    stub_class = pb2_grpc.CryptoStreamingServiceStub
    request_class = pb2.SendCommandRequest

    @classmethod
    def from_env(cls, target: str | None = None, token: str | None = None, **options: Any) -> Self:
        """A client for `target`/`token`, each defaulting to the environment (see default_*)."""
        options.setdefault("ack_timeout", default_ack_timeout())
        return cls(target or default_target(), default_token() if token is None else token, **options)


def connect_sync(target: str | None = None, token: str | None = None, **options: Any) -> SyncCommandClient[
        pb2.DjangoCommand, pb2.SendCommandResponse, common_pb2.CommandAck]:
    """A blocking crypto command client for sync Django code; close it (or use `with`)."""
    return SyncCommandClient(lambda: CryptoStreamingCommandClient.from_env(target, token, **options))
