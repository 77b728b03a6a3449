"""wallet_update: upsert one wallet balance, keyed by (client, wallet_id, symbol)."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Wallet

from ..proto.converters import CryptoProtobufConverter as convert
from .base import MessageContext
from .clients import client_pk
from .fields import text


async def handle_wallet_update(ctx: MessageContext, payload: pb2.WalletUpdate) -> None:
    """All fields are validated before any write, so a bad update leaves the stored wallet untouched.

    An unset last_sync means "now" as far as the server can tell: received_at stands in for it.
    """
    wallet_id = text(ctx, "wallet_update.wallet_id", Wallet, "wallet_id", payload.wallet_id, required=True)
    symbol = text(ctx, "wallet_update.symbol", Wallet, "symbol", payload.symbol, required=True)
    defaults = {
        "balance_available": convert.parse_decimal(payload.balance_available, "wallet_update.balance_available"),
        "balance_locked": convert.parse_decimal(payload.balance_locked, "wallet_update.balance_locked"),
        "last_sync": convert.to_datetime(payload.last_sync, "wallet_update.last_sync") or ctx.received_at,
    }
    pk = await client_pk(ctx.client_id)
    await Wallet.objects.aupdate_or_create(client_id=pk, wallet_id=wallet_id, symbol=symbol, defaults=defaults)
