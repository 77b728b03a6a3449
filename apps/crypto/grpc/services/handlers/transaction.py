"""transaction: a deposit, withdrawal or transfer, recorded once per (client, transaction_id).

A repeat report of the same transaction_id never creates a second row. Its type, symbol and amount
are facts that cannot change: a repeat that disagrees on them is rejected. Its status and details
may move on (pending -> confirmed), so a repeat updates them: the latest report wins, "latest" in the
bot's own order (ctx.reported_at, its ClientMessage.timestamp), not in the order replicas store. A
repeat older than the stored report is not refused: it just leaves status and details as they are.
Comparing with the stored row needs the database, so that part is decided when the batch is stored
(resolve()); everything else is checked at once. The UPDATE itself is guarded by the stored
reported_at too, so two replicas storing reports of one transaction concurrently cannot move it back.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, Final

from django.db.models import BooleanField
from django.db.models.expressions import RawSQL

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Transaction, TransactionType

from ..bulk import any_of, insert_many, update_many
from ..inbound import MessageContext, Refusal, Rejected
from ..ingest.plan import PayloadKind, Plan
from ..proto.converters import CryptoProtobufConverter as convert
from .fields import text

_TYPES = frozenset(TransactionType.values)
_ALLOWED = ", ".join(TransactionType.values)
IMMUTABLE: Final = ("type", "symbol", "amount")
COLUMNS: Final = ("client", "transaction_id", "type", "symbol", "amount", "status", "details", "created_at",
                  "reported_at")
CLIENTS_PER_LOOKUP: Final = 100  # clients per stored-transactions query
TransactionKey = tuple[int, str]  # (client pk, transaction_id)


@dataclass(slots=True)
class TransactionWrite:
    kind: ClassVar[str] = "transaction"
    ctx: MessageContext
    client_pk: int
    transaction_id: str
    type: str
    symbol: str
    amount: str  # checked decimal text
    status: str
    details: str


def _transaction_type(value: str) -> str:
    if value not in _TYPES:
        raise Rejected(f"transaction.type: {value[:40]!r} is not one of {_ALLOWED}")
    return value


def check(ctx: MessageContext, client_pk: int, payload: pb2.TransactionReport) -> TransactionWrite:
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


def reports(plan: Plan) -> dict[TransactionKey, list[TransactionWrite]]:
    """The batch's reports of each (client, transaction_id), in message order."""
    return plan.part(TRANSACTION.name, dict)


def fold(plan: Plan, w: TransactionWrite) -> None:
    reports(plan).setdefault((w.client_pk, w.transaction_id), []).append(w)


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """What the database already holds for a (client, transaction_id)."""

    type: str
    symbol: str
    amount: Decimal
    status: str
    details: str
    reported_at: datetime | None = None  # of the stored status; None: stored before reports were ordered


@dataclass(slots=True)
class TransactionRow:
    """A transaction row to insert (facts of its first report) or to update (status, details, reported_at)."""

    client_pk: int
    transaction_id: str
    type: str
    symbol: str
    amount: str | Decimal
    status: str
    details: str
    reported_at: datetime | None  # of the report whose status and details the row holds


@dataclass
class TransactionChanges:
    created: list[TransactionRow] = field(default_factory=list)
    updated: list[TransactionRow] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def _differing(row: TransactionRow, w: TransactionWrite) -> list[str]:
    """Immutable facts on which a repeat disagrees; amounts compare as numbers ("2.250" == "2.25")."""
    differing = [name for name in ("type", "symbol") if getattr(row, name) != getattr(w, name)]
    if row.amount != w.amount and Decimal(row.amount) != Decimal(w.amount):
        differing.append("amount")
    return sorted(differing, key=IMMUTABLE.index)


def resolve(groups: Mapping[TransactionKey, list[TransactionWrite]],
            stored: Mapping[TransactionKey, StoredTransaction]) -> TransactionChanges:
    """Pure: the rows to create and update, and the repeats refused, given what is stored.

    Facts come from the stored row, else from the first report; status and details from the report
    with the greatest reported_at (a tie: the later message), the stored one included.
    """
    changes = TransactionChanges()
    for (client_pk, transaction_id), writes in groups.items():
        known = stored.get((client_pk, transaction_id))
        if known is None:
            first = writes[0]
            row = TransactionRow(client_pk, transaction_id, first.type, first.symbol, first.amount, first.status,
                                 first.details, first.ctx.reported_at)
        else:
            row = TransactionRow(client_pk, transaction_id, known.type, known.symbol, known.amount, known.status,
                                 known.details, known.reported_at)
        for w in writes if known else writes[1:]:
            if differing := _differing(row, w):
                reason = (f"transaction.transaction_id: {transaction_id!r} already recorded with another "
                          f"{', '.join(differing)}")
                changes.refused.append(Refusal(w.ctx, w.kind, reason, at_flush=True))
            elif row.reported_at is None or row.reported_at <= w.ctx.reported_at:
                row.status, row.details, row.reported_at = w.status, w.details, w.ctx.reported_at
        if known is None:
            changes.created.append(row)
        elif (row.status, row.details, row.reported_at) != (known.status, known.details, known.reported_at):
            changes.updated.append(row)  # a newer report, even of the same status: its time guards the row
    return changes


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _stored(groups: Mapping[TransactionKey, object]) -> dict[TransactionKey, StoredTransaction]:
    """The stored rows among the batch's (client, transaction_id) keys, one indexed range per client."""
    by_client: dict[int, list[str]] = {}
    for client_pk, transaction_id in groups:
        by_client.setdefault(client_pk, []).append(transaction_id)
    stored: dict[TransactionKey, StoredTransaction] = {}
    for chunk in _chunks(list(by_client.items()), CLIENTS_PER_LOOKUP):
        condition, params = any_of(Transaction, "transaction_id", dict(chunk), "client")
        rows = Transaction.objects.filter(RawSQL(condition, params, output_field=BooleanField())).values_list(
            "client_id", "transaction_id", "type", "symbol", "amount", "status", "details", "reported_at")
        for client_pk, transaction_id, *facts in rows:
            stored[(client_pk, transaction_id)] = StoredTransaction(*facts)
    return stored


def store(plan: Plan) -> list[Refusal]:
    groups = reports(plan)
    if not groups:
        return []
    changes = resolve(groups, _stored(groups))
    insert_many(Transaction, COLUMNS, [
        (r.client_pk, r.transaction_id, r.type, r.symbol, r.amount, r.status, r.details, plan.now, r.reported_at)
        for r in changes.created])
    # guarded in SQL as well: another replica may have stored a newer report since _stored() read the row
    update_many(Transaction, ("status", "details", "reported_at"), ("client", "transaction_id"),
                ((r.status, r.details, r.reported_at, r.client_pk, r.transaction_id, r.reported_at)
                 for r in changes.updated), unless_newer="reported_at")
    return changes.refused


TRANSACTION = PayloadKind(TransactionWrite.kind, store, check=check, fold=fold,
                          idempotent=True)  # one row per (client, transaction_id); status ordered by reported_at
