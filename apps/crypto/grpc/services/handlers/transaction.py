"""transaction: a deposit, withdrawal or transfer, recorded once per (client, transaction_id).

A repeat report of the same transaction_id never creates a second row. Its type, symbol and amount
are facts that cannot change: a repeat that disagrees on them is rejected. Its status and details
may move on (pending -> confirmed), so a repeat updates them: the latest report wins. Comparing with
the stored row needs the database, so that part is decided when the batch is stored
(ingest/merge.py, resolve_transactions); everything else is checked here.
"""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Transaction, TransactionType

from ..ingest.writes import TransactionWrite
from ..proto.converters import CryptoProtobufConverter as convert
from .base import MessageContext, Rejected
from .fields import text

_TYPES = frozenset(TransactionType.values)
_ALLOWED = ", ".join(TransactionType.values)


def _transaction_type(value: str) -> str:
    if value not in _TYPES:
        raise Rejected(f"transaction.type: {value[:40]!r} is not one of {_ALLOWED}")
    return value


def handle_transaction(ctx: MessageContext, client_pk: int, payload: pb2.TransactionReport) -> TransactionWrite:
    """Amounts are never negative: the type carries the direction."""
    return TransactionWrite(
        ctx, client_pk,
        transaction_id=text(ctx, "transaction.transaction_id", Transaction, "transaction_id", payload.transaction_id,
                            required=True),
        type=_transaction_type(payload.type),
        symbol=text(ctx, "transaction.symbol", Transaction, "symbol", payload.symbol, required=True),
        amount=convert.decimal_text(payload.amount, "transaction.amount"),
        status=text(ctx, "transaction.status", Transaction, "status", payload.status),
        details=text(ctx, "transaction.details", Transaction, "details", payload.details),
    )
