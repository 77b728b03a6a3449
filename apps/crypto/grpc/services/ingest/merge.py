"""Fold a batch of validated writes into the few bulk statements that store it: pure, no database.

The rules keep what one-write-per-message storage meant, for messages taken in the order they came:
- a wallet is keyed by (client, wallet_id, symbol); the last update in the batch wins;
- Client columns (last_seen, status, registration fields) are folded per client in message order,
  so the stored row is what the last message made it; every status report still gets its history row;
- a transaction_id is recorded once per client; its type, symbol and amount are facts that cannot
  change (a repeat that disagrees is refused), its status and details may move on (latest wins);
- an ack belongs to the client whose command it is: the stored record's client, else the first
  client in the batch that acked it; acks of others are refused.
Decisions that depend on stored rows take those rows as a plain mapping the writer looked up.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from .writes import (
    AckWrite,
    ErrorWrite,
    HeartbeatWrite,
    LogWrite,
    Refusal,
    RegisterWrite,
    StatusWrite,
    TransactionWrite,
    WalletWrite,
    Write,
)

WalletKey = tuple[int, str, str]  # (client pk, wallet_id, symbol)
TransactionKey = tuple[int, str]  # (client pk, transaction_id)
IMMUTABLE: Final = ("type", "symbol", "amount")


@dataclass(slots=True)
class ClientPatch:
    """Client columns to set for one client; `restore` (a registration) upserts by client_id."""

    client_id: str
    fields: dict[str, Any] = field(default_factory=dict)
    restore: bool = False


@dataclass
class Plan:
    """One batch, folded; lists keep message order."""

    wallets: dict[WalletKey, WalletWrite] = field(default_factory=dict)
    transactions: dict[TransactionKey, list[TransactionWrite]] = field(default_factory=dict)
    clients: dict[int, ClientPatch] = field(default_factory=dict)
    status_rows: list[StatusWrite] = field(default_factory=list)
    logs: list[LogWrite] = field(default_factory=list)
    errors: list[ErrorWrite] = field(default_factory=list)
    acks: dict[str, list[AckWrite]] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)


def _patch(plan: Plan, client_pk: int, client_id: str) -> ClientPatch:
    patch = plan.clients.get(client_pk)
    if patch is None:
        patch = plan.clients[client_pk] = ClientPatch(client_id)
    return patch


def _wallet(plan: Plan, w: WalletWrite) -> None:
    plan.wallets[(w.client_pk, w.wallet_id, w.symbol)] = w


def _transaction(plan: Plan, w: TransactionWrite) -> None:
    plan.transactions.setdefault((w.client_pk, w.transaction_id), []).append(w)


def _heartbeat(plan: Plan, w: HeartbeatWrite) -> None:
    _patch(plan, w.client_pk, w.ctx.client_id).fields["last_seen"] = w.ctx.received_at


def _status(plan: Plan, w: StatusWrite) -> None:
    plan.status_rows.append(w)
    _patch(plan, w.client_pk, w.ctx.client_id).fields.update(status=w.status, last_seen=w.ctx.received_at)


def _register(plan: Plan, w: RegisterWrite) -> None:
    patch = _patch(plan, w.client_pk, w.ctx.client_id)
    patch.fields.update(name=w.name, client_type=w.client_type, version=w.version, api_url=w.api_url,
                        status=w.status, last_seen=w.ctx.received_at)
    patch.restore = True


def _log(plan: Plan, w: LogWrite) -> None:
    plan.logs.append(w)


def _error(plan: Plan, w: ErrorWrite) -> None:
    plan.errors.append(w)


def _ack(plan: Plan, w: AckWrite) -> None:
    plan.acks.setdefault(w.command_id, []).append(w)


def _refusal(plan: Plan, w: Refusal) -> None:
    plan.refusals.append(w)


_MERGE: Final[Mapping[type, Callable[[Plan, Any], None]]] = {
    WalletWrite: _wallet, TransactionWrite: _transaction, HeartbeatWrite: _heartbeat, StatusWrite: _status,
    RegisterWrite: _register, LogWrite: _log, ErrorWrite: _error, AckWrite: _ack, Refusal: _refusal,
}


def merge(writes: Iterable[Write]) -> Plan:
    plan = Plan()
    for write in writes:
        _MERGE[type(write)](plan, write)
    return plan


@dataclass(frozen=True, slots=True)
class StoredTransaction:
    """What the database already holds for a (client, transaction_id)."""

    type: str
    symbol: str
    amount: Decimal
    status: str
    details: str


@dataclass(slots=True)
class TransactionRow:
    """A transaction row to insert (facts of its first report) or to update (status, details)."""

    client_pk: int
    transaction_id: str
    type: str
    symbol: str
    amount: str | Decimal
    status: str
    details: str


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


def resolve_transactions(groups: Mapping[TransactionKey, list[TransactionWrite]],
                         stored: Mapping[TransactionKey, StoredTransaction]) -> TransactionChanges:
    changes = TransactionChanges()
    for (client_pk, transaction_id), writes in groups.items():
        known = stored.get((client_pk, transaction_id))
        if known is None:  # the first report creates the row
            first, repeats = writes[0], writes[1:]
            row = TransactionRow(client_pk, transaction_id, first.type, first.symbol, first.amount, first.status,
                                 first.details)
        else:
            repeats = writes
            row = TransactionRow(client_pk, transaction_id, known.type, known.symbol, known.amount, known.status,
                                 known.details)
        for w in repeats:
            if differing := _differing(row, w):
                reason = (f"transaction.transaction_id: {transaction_id!r} already recorded with another "
                          f"{', '.join(differing)}")
                changes.refused.append(Refusal(w.ctx, w.kind, reason, at_flush=True))
            else:
                row.status, row.details = w.status, w.details
        if known is None:
            changes.created.append(row)
        elif (row.status, row.details) != (known.status, known.details):
            changes.updated.append(row)
    return changes


@dataclass(slots=True)
class AckRow:
    """The CommandRecord fields an ack sets; the last accepted ack of a command wins."""

    command_id: str
    client_id: str
    success: bool
    message: str
    error: str
    finished_at: datetime  # the server's receive time: bot clocks are not trusted for the audit log


@dataclass
class AckChanges:
    rows: list[AckRow] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def resolve_acks(groups: Mapping[str, list[AckWrite]], owners: Mapping[str, str]) -> AckChanges:
    """`owners`: command_id -> client_id of the CommandRecords that exist."""
    changes = AckChanges()
    for command_id, writes in groups.items():
        owner = owners.get(command_id)
        last: AckWrite | None = None
        for w in writes:
            owner = owner or w.ctx.client_id
            if w.ctx.client_id == owner:
                last = w
            else:
                reason = f"command_ack.command_id: {command_id[:40]!r} belongs to another client"
                changes.refused.append(Refusal(w.ctx, w.kind, reason, at_flush=True))
        if last is not None:
            changes.rows.append(AckRow(command_id, last.ctx.client_id, last.success, last.message, last.error,
                                       last.ctx.received_at))
    return changes
