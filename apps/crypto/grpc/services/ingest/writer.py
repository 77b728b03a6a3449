"""Store one batch of validated writes: one transaction, a few bulk statements (synchronous ORM code).

Runs in Django's sync thread (the buffer calls it through one sync_to_async per batch). When the
batch fails (a DatabaseError, e.g. a client row an operator deleted breaks a foreign key), it is
retried write by write, each in its own transaction, so only the writes that fail again become
rejections and everything else, of every other client, is still stored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from django.db import DatabaseError, transaction
from django.db.models import BooleanField
from django.db.models.expressions import RawSQL
from django.utils import timezone

from apps.crypto.limits import ID_MAX, REASON_MAX
from apps.crypto.models import (
    Client,
    CommandOutcome,
    CommandRecord,
    ErrorReport,
    LogEntry,
    RejectedMessage,
    StatusChange,
    Transaction,
    Wallet,
)

from .bulk import any_of, insert_many, update_many
from .merge import (
    AckChanges,
    Plan,
    StoredTransaction,
    TransactionChanges,
    TransactionKey,
    merge,
    resolve_acks,
    resolve_transactions,
)
from .writes import FlushReport, Refusal, Write

logger = logging.getLogger(__name__)

LOOKUP_CHUNK: Final = 500  # command ids per lookup query (SQLite allows 32,766 parameters)
CLIENTS_PER_LOOKUP: Final = 100  # clients per stored-transactions query
WALLET_COLUMNS: Final = ("client", "wallet_id", "symbol", "balance_available", "balance_locked", "last_sync",
                         "updated_at")
WALLET_KEY: Final = WALLET_COLUMNS[:3]  # the uniq_wallet_per_client_symbol constraint
TRANSACTION_COLUMNS: Final = ("client", "transaction_id", "type", "symbol", "amount", "status", "details",
                              "created_at")
ACK_UPDATE: Final = ["outcome", "ack_success", "ack_message", "ack_error", "finished_at"]


@dataclass
class Changes:
    """A merged batch with the decisions that needed stored rows."""

    plan: Plan
    transactions: TransactionChanges
    acks: AckChanges
    now: datetime  # auto_now / auto_now_add value for the whole batch (one transaction)

    @property
    def found_refusals(self) -> list[Refusal]:
        return self.transactions.refused + self.acks.refused


def write_batch(writes: Sequence[Write]) -> FlushReport:
    """Store `writes` (in message order); never raises."""
    try:
        return FlushReport(len(writes), _store(writes))
    except Exception as exc:  # DatabaseError, or a bug that one write triggers: isolate it
        logger.warning("ingest.batch_failed writes=%d error=%s retry=one_by_one", len(writes), type(exc).__name__)
        return _one_by_one(writes)


def _store(writes: Sequence[Write]) -> list[Refusal]:
    plan = merge(writes)
    with transaction.atomic():
        changes = Changes(plan, resolve_transactions(plan.transactions, _stored_transactions(plan.transactions)),
                          resolve_acks(plan.acks, _ack_owners(plan.acks)), timezone.now())
        for step in STEPS:
            step(changes)
    return changes.found_refusals


def _one_by_one(writes: Sequence[Write]) -> FlushReport:
    report = FlushReport(len(writes))
    failed: list[Refusal] = []
    for write in writes:
        try:
            report.refused += _store([write])
        except DatabaseError as exc:
            logger.error("message.storage_error client_id=%s message_id=%r payload=%s error=%s",
                         write.ctx.client_id, write.ctx.message_id, write.kind, type(exc).__name__)
            failed += _refused(write, f"storage error: {type(exc).__name__}")
            report.stale_clients.add(write.ctx.client_id)  # the cached pk may be what failed (row deleted)
        except Exception as exc:  # a bug must cost one message, not the batch
            logger.error("message.handler_error client_id=%s message_id=%r payload=%s error=%s",
                         write.ctx.client_id, write.ctx.message_id, write.kind, type(exc).__name__, exc_info=True)
            failed += _refused(write, f"internal error: {type(exc).__name__}")
    _record_failures(failed)
    report.refused += failed
    return report


def _refused(write: Write, reason: str) -> list[Refusal]:
    """A refusal that cannot be stored itself stays the log line above: it was counted when it was made."""
    return [] if isinstance(write, Refusal) else [Refusal(write.ctx, write.kind, reason, at_flush=True)]


def _record_failures(refusals: list[Refusal]) -> None:
    """Best effort: when the database itself is down, the log lines are all that is left."""
    if not refusals:
        return
    try:
        with transaction.atomic():
            RejectedMessage.objects.bulk_create(_rejection_rows(refusals))
    except DatabaseError as exc:
        logger.error("message.rejections_not_stored count=%d error=%s", len(refusals), type(exc).__name__)


# ----------------------------------------------------------------------------- lookups


def _chunks(items: Sequence[Any], size: int = LOOKUP_CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _stored_transactions(groups: Mapping[TransactionKey, object]) -> dict[TransactionKey, StoredTransaction]:
    """The stored rows among the batch's (client, transaction_id) keys, one indexed range per client."""
    by_client: dict[int, list[str]] = {}
    for client_pk, transaction_id in groups:
        by_client.setdefault(client_pk, []).append(transaction_id)
    stored: dict[TransactionKey, StoredTransaction] = {}
    for chunk in _chunks(list(by_client.items()), CLIENTS_PER_LOOKUP):
        condition, params = any_of(Transaction, "transaction_id", dict(chunk), "client")
        rows = Transaction.objects.filter(RawSQL(condition, params, output_field=BooleanField())).values_list(
            "client_id", "transaction_id", "type", "symbol", "amount", "status", "details")
        for client_pk, transaction_id, *facts in rows:
            stored[(client_pk, transaction_id)] = StoredTransaction(*facts)
    return stored


def _ack_owners(groups: Mapping[str, object]) -> dict[str, str]:
    owners: dict[str, str] = {}
    for chunk in _chunks(list(groups)):
        owners.update(CommandRecord.objects.filter(command_id__in=chunk).values_list("command_id", "client_id"))
    return owners


# ----------------------------------------------------------------------------- statements


def _clients(changes: Changes) -> None:
    """Grouped by the set of columns; a registration upserts by client_id (it restores a deleted row)."""
    groups: dict[tuple[bool, tuple[str, ...]], list[tuple[int, Any]]] = {}
    for client_pk, patch in changes.plan.clients.items():
        groups.setdefault((patch.restore, tuple(patch.fields)), []).append((client_pk, patch))
    for (restore, names), patches in groups.items():
        if restore:
            Client.objects.bulk_create([Client(client_id=p.client_id, **p.fields) for _, p in patches],
                                       update_conflicts=True, unique_fields=["client_id"], update_fields=list(names))
        else:
            update_many(Client, names, ("id",), ([*p.fields.values(), pk] for pk, p in patches))


def _status_rows(changes: Changes) -> None:
    StatusChange.objects.bulk_create(
        [StatusChange(client_id=w.client_pk, status=w.status, details=w.details) for w in changes.plan.status_rows])


def _wallets(changes: Changes) -> None:
    """One upsert on the (client, wallet_id, symbol) constraint: the batch's last balance of each wallet."""
    insert_many(Wallet, WALLET_COLUMNS, [
        (w.client_pk, w.wallet_id, w.symbol, w.available, w.locked, w.last_sync or w.ctx.received_at, changes.now)
        for w in changes.plan.wallets.values()], unique=WALLET_KEY, update=WALLET_COLUMNS[3:])


def _transactions(changes: Changes) -> None:
    insert_many(Transaction, TRANSACTION_COLUMNS, [
        (r.client_pk, r.transaction_id, r.type, r.symbol, r.amount, r.status, r.details, changes.now)
        for r in changes.transactions.created])
    update_many(Transaction, ("status", "details"), ("client", "transaction_id"),
                ((r.status, r.details, r.client_pk, r.transaction_id) for r in changes.transactions.updated))


def _acks(changes: Changes) -> None:
    """The record is upserted by command_id; an ack for an unknown command still leaves one (kind '').
    An ack of a command whose caller stopped waiting is recorded as late."""
    given_up = set(CommandRecord.objects.filter(
        command_id__in=[r.command_id for r in changes.acks.rows],
        outcome__in=[CommandOutcome.TIMED_OUT, CommandOutcome.LATE]).values_list("command_id", flat=True))
    rows = [CommandRecord(command_id=r.command_id, client_id=r.client_id,
                          outcome=CommandOutcome.LATE if r.command_id in given_up else
                          CommandOutcome.ACKED if r.success else CommandOutcome.FAILED,
                          ack_success=r.success, ack_message=r.message, ack_error=r.error, finished_at=r.finished_at)
            for r in changes.acks.rows]
    if rows:
        CommandRecord.objects.bulk_create(rows, update_conflicts=True, unique_fields=["command_id"],
                                          update_fields=ACK_UPDATE)


def _logs(changes: Changes) -> None:
    LogEntry.objects.bulk_create([LogEntry(client_id=w.client_pk, level=w.level, message=w.message,
                                           extra_data=w.extra_data) for w in changes.plan.logs])


def _errors(changes: Changes) -> None:
    ErrorReport.objects.bulk_create([ErrorReport(client_id=w.client_pk, severity=w.severity, message=w.message,
                                                 traceback=w.traceback) for w in changes.plan.errors])


def _rejection_rows(refusals: Iterable[Refusal]) -> list[RejectedMessage]:
    return [RejectedMessage(client_id=r.ctx.client_id[:ID_MAX], message_id=r.ctx.message_id[:ID_MAX],
                            payload_type=r.kind, reason=r.reason[:REASON_MAX]) for r in refusals]


def _rejections(changes: Changes) -> None:
    RejectedMessage.objects.bulk_create(_rejection_rows([*changes.plan.refusals, *changes.found_refusals]))


STEPS: Final[tuple[Callable[[Changes], None], ...]] = (
    _clients, _status_rows, _wallets, _transactions, _acks, _logs, _errors, _rejections)
