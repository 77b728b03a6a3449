"""sync_wallets: the bot re-reads balances and reports them as WalletUpdates; no symbols means all."""

from __future__ import annotations

from collections.abc import Iterable

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .base_client import CommandResult, CryptoStreamingCommandClient

KIND = "sync_wallets"


def build_sync_wallets(symbols: Iterable[str] = ()) -> pb2.DjangoCommand:
    """Blank entries are dropped and duplicates collapsed, keeping the given order."""
    cleaned = list(dict.fromkeys(symbol.strip() for symbol in symbols if symbol.strip()))
    return pb2.DjangoCommand(sync_wallets=pb2.SyncWalletsCommand(symbols=cleaned))


async def sync_wallets(client: CryptoStreamingCommandClient, client_id: str, symbols: Iterable[str] = (),
                       wait: bool = True, timeout: float | None = None) -> CommandResult:
    """CommandAck when wait, else SendCommandResponse."""
    return await client.dispatch(client_id, build_sync_wallets(symbols), wait=wait, timeout=timeout)
