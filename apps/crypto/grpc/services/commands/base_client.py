"""The command client bound to crypto.CryptoStreamingService, and where its defaults come from."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc
from config.env import ENV, split_list

from ..config import CryptoStreamingConfig
from .base import StreamingCommandClient, ack_deadline, client_error, outgoing
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


@dataclass
class BroadcastOutcome:
    """What a BroadcastCommand returned: one result per targeted client, then the summary."""

    results: list[pb2.BroadcastClientResult] = field(default_factory=list)
    summary: pb2.BroadcastSummary | None = None  # None only if the stream ended without one

    @property
    def failed(self) -> list[pb2.BroadcastClientResult]:
        return [r for r in self.results if not r.ack.success]


def selector(client_ids: Iterable[str] = (), client_type: str = "", all_connected: bool = False) -> pb2.ClientSelector:
    """A ClientSelector; the server refuses one with none or more than one way set (INVALID_ARGUMENT)."""
    return pb2.ClientSelector(client_ids=list(client_ids), client_type=client_type, all_connected=all_connected)


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

    async def broadcast(self, client_selector: pb2.ClientSelector, command: pb2.DjangoCommand,
                        timeout: float | None = None,
                        on_result: Callable[[pb2.BroadcastClientResult], Awaitable[None] | None] | None = None,
                        ) -> BroadcastOutcome:
        """One command to every client the selector matches (BroadcastCommand); waits up to `timeout`
        (default ack_timeout) for their acks. on_result sees each client's result as it arrives."""
        deadline = ack_deadline(self.ack_timeout if timeout is None else timeout, self.ack_margin)
        request = pb2.BroadcastCommandRequest(selector=client_selector, command=outgoing(command))
        outcome = BroadcastOutcome()
        try:
            async for item in self._get_stub().BroadcastCommand(request, timeout=deadline, metadata=self._metadata):
                if item.WhichOneof("result") == "summary":
                    outcome.summary = item.summary
                    continue
                outcome.results.append(item.client)
                if on_result is not None and (pending := on_result(item.client)) is not None:
                    await pending
        except grpc.aio.AioRpcError as exc:
            raise client_error(exc, self.target, deadline) from None
        return outcome


def connect_sync(target: str | None = None, token: str | None = None, **options: Any) -> SyncCommandClient[
        pb2.DjangoCommand, pb2.SendCommandResponse, common_pb2.CommandAck]:
    """A blocking crypto command client for sync Django code; close it (or use `with`)."""
    return SyncCommandClient(lambda: CryptoStreamingCommandClient.from_env(target, token, **options))
