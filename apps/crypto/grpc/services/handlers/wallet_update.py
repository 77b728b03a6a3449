"""wallet_update: one wallet balance, upserted by (client, wallet_id, symbol); the latest report wins.

"Latest" is the bot's own order (ctx.reported_at: its ClientMessage.timestamp), not the order in which
replicas store: within a batch the update with the greatest reported_at is kept (a tie: the later
message), and the upsert changes a stored wallet only when the stored reported_at is not later, a
condition the database checks in the statement itself. So a lagging replica that stores an older
balance after another replica stored a newer one leaves the newer one in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Final

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Wallet

from ..bulk import insert_many
from ..inbound import MessageContext, Refusal
from ..ingest.plan import PayloadKind, Plan
from ..proto.converters import CryptoProtobufConverter as convert
from .fields import text

COLUMNS: Final = ("client", "wallet_id", "symbol", "balance_available", "balance_locked", "last_sync", "updated_at",
                  "reported_at")
KEY: Final = COLUMNS[:3]  # the uniq_wallet_per_client_symbol constraint
WalletKey = tuple[int, str, str]  # (client pk, wallet_id, symbol)


@dataclass(slots=True)
class WalletWrite:
    kind: ClassVar[str] = "wallet_update"
    ctx: MessageContext
    client_pk: int
    wallet_id: str
    symbol: str
    available: str  # checked decimal text
    locked: str
    last_sync: datetime | None  # None: the server's receive time stands in


def check(ctx: MessageContext, client_pk: int, payload: pb2.WalletUpdate) -> WalletWrite:
    """All fields are validated before anything is buffered, so a bad update leaves the stored wallet untouched."""
    return WalletWrite(
        ctx, client_pk,
        wallet_id=text(ctx, "wallet_update.wallet_id", Wallet, "wallet_id", payload.wallet_id, required=True),
        symbol=text(ctx, "wallet_update.symbol", Wallet, "symbol", payload.symbol, required=True),
        available=convert.decimal_text(payload.balance_available, "wallet_update.balance_available"),
        locked=convert.decimal_text(payload.balance_locked, "wallet_update.balance_locked"),
        last_sync=convert.to_datetime(payload.last_sync, "wallet_update.last_sync"),
    )


def latest(plan: Plan) -> dict[WalletKey, WalletWrite]:
    """The batch's latest update of each wallet, in the bot's order."""
    return plan.part(WALLET_UPDATE.name, dict)


def fold(plan: Plan, w: WalletWrite) -> None:
    """Keeps the greatest reported_at per wallet; a tie goes to the later message."""
    updates = latest(plan)
    key = (w.client_pk, w.wallet_id, w.symbol)
    kept = updates.get(key)
    if kept is None or kept.ctx.reported_at <= w.ctx.reported_at:
        updates[key] = w


def store(plan: Plan) -> list[Refusal]:
    """One upsert on the (client, wallet_id, symbol) constraint, which leaves a wallet stored with a later
    reported_at as it is; an unset last_sync is the receive time."""
    insert_many(Wallet, COLUMNS, [
        (w.client_pk, w.wallet_id, w.symbol, w.available, w.locked, w.last_sync or w.ctx.received_at, plan.now,
         w.ctx.reported_at)
        for w in latest(plan).values()], unique=KEY, update=COLUMNS[3:], unless_newer="reported_at")
    return []


WALLET_UPDATE = PayloadKind(WalletWrite.kind, store, check=check, fold=fold,
                            idempotent=True)  # an upsert per wallet, ordered by reported_at
