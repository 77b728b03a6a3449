"""transaction: record a deposit, withdrawal or transfer, idempotently per (client, transaction_id).

A repeat report of the same transaction_id never creates a second row. Its type, symbol and amount
are facts that cannot change: a repeat that disagrees on them is rejected. Its status and details
may move on (pending -> confirmed), so a repeat updates them: the latest report wins.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Transaction, TransactionType

from ..proto.converters import CryptoProtobufConverter as convert
from .base import MessageContext, Rejected
from .clients import client_pk
from .fields import text

IMMUTABLE = ("type", "symbol", "amount")


def _transaction_type(value: str) -> str:
    if value not in TransactionType.values:
        allowed = ", ".join(TransactionType.values)
        raise Rejected(f"transaction.type: {value[:40]!r} is not one of {allowed}")
    return value


def _fields(ctx: MessageContext, payload: pb2.TransactionReport) -> dict[str, Any]:
    """Amounts are never negative: the type carries the direction."""
    return {
        "type": _transaction_type(payload.type),
        "symbol": text(ctx, "transaction.symbol", Transaction, "symbol", payload.symbol, required=True),
        "amount": convert.parse_decimal(payload.amount, "transaction.amount"),
        "status": text(ctx, "transaction.status", Transaction, "status", payload.status),
        "details": text(ctx, "transaction.details", Transaction, "details", payload.details),
    }


def _conflicts(row: Transaction, fields: dict[str, Any]) -> list[str]:
    stored = {"type": row.type, "symbol": row.symbol, "amount": Decimal(row.amount)}
    return [name for name in IMMUTABLE if stored[name] != fields[name]]


async def handle_transaction(ctx: MessageContext, payload: pb2.TransactionReport) -> None:
    transaction_id = text(
        ctx, "transaction.transaction_id", Transaction, "transaction_id", payload.transaction_id, required=True
    )
    fields = _fields(ctx, payload)
    pk = await client_pk(ctx.client_id)
    row, created = await Transaction.objects.aget_or_create(
        client_id=pk, transaction_id=transaction_id, defaults=fields
    )
    if created:
        return
    if conflicts := _conflicts(row, fields):
        differing = ", ".join(conflicts)
        raise Rejected(f"transaction.transaction_id: {transaction_id!r} already recorded with another {differing}")
    if (row.status, row.details) != (fields["status"], fields["details"]):
        await Transaction.objects.filter(pk=row.pk).aupdate(status=fields["status"], details=fields["details"])
