"""wallet_update: one wallet balance, upserted by (client, wallet_id, symbol) when the batch is stored."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Wallet

from ..ingest.writes import WalletWrite
from ..proto.converters import CryptoProtobufConverter as convert
from .base import MessageContext
from .fields import text


def handle_wallet_update(ctx: MessageContext, client_pk: int, payload: pb2.WalletUpdate) -> WalletWrite:
    """All fields are validated before anything is buffered, so a bad update leaves the stored wallet untouched.

    An unset last_sync means "now" as far as the server can tell: received_at stands in for it (at write time).
    """
    return WalletWrite(
        ctx, client_pk,
        wallet_id=text(ctx, "wallet_update.wallet_id", Wallet, "wallet_id", payload.wallet_id, required=True),
        symbol=text(ctx, "wallet_update.symbol", Wallet, "symbol", payload.symbol, required=True),
        available=convert.decimal_text(payload.balance_available, "wallet_update.balance_available"),
        locked=convert.decimal_text(payload.balance_locked, "wallet_update.balance_locked"),
        last_sync=convert.to_datetime(payload.last_sync, "wallet_update.last_sync"),
    )
