"""The latest report wins in the bot's own order (ClientMessage.timestamp), not in message arrival order.

Pure: how a batch folds and how resolve() decides against what is stored. No database; the same rules
against the database are in tests/ingest/test_ordering.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from apps.crypto.grpc.services.handlers import transaction, wallet_update
from apps.crypto.grpc.services.handlers.clients import CLIENT_ROWS
from apps.crypto.grpc.services.handlers.registration import RegisterWrite
from apps.crypto.grpc.services.handlers.status import STATUS, StatusWrite
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import StoredTransaction, TransactionWrite
from apps.crypto.grpc.services.handlers.wallet_update import WalletWrite
from apps.crypto.grpc.services.inbound import MessageContext
from apps.crypto.grpc.services.ingest.plan import Plan, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def merge(writes: list[Write]) -> Plan:
    return BatchWriter(PARTS).fold(writes)


def sent(n: int, at: float | None, client: str = "a") -> MessageContext:
    """The n-th message to arrive (received n seconds after T0), which the bot stamped `at` seconds after T0."""
    return MessageContext(client, f"{client}-m{n}", "r1", T0 + timedelta(seconds=n),
                          sent_at=None if at is None else T0 + timedelta(seconds=at))


def wallet(n: int, at: float | None, available: str) -> WalletWrite:
    return WalletWrite(sent(n, at), 1, "w", "BTC", available, "0", None)


def tx(n: int, at: float | None, status: str, amount: str = "1") -> TransactionWrite:
    return TransactionWrite(sent(n, at), 1, "t1", "deposit", "BTC", amount, status, f"details {n}")


def status(n: int, at: float | None, value: str) -> StatusWrite:
    return StatusWrite(sent(n, at), 1, value, f"report {n}")


def test_the_reported_at_is_the_bots_timestamp_else_the_receive_time() -> None:
    assert sent(3, 1).reported_at == T0 + timedelta(seconds=1)
    assert sent(3, None).reported_at == T0 + timedelta(seconds=3)


def test_a_wallet_keeps_the_update_the_bot_sent_last_not_the_one_that_arrived_last() -> None:
    plan = merge([wallet(0, 10, "90"), wallet(1, 5, "100")])
    [kept] = wallet_update.latest(plan).values()
    assert (kept.available, kept.ctx.reported_at) == ("90", T0 + timedelta(seconds=10))


def test_a_wallet_tie_goes_to_the_later_message() -> None:
    plan = merge([wallet(0, 7, "1"), wallet(1, 7, "2"), wallet(2, 3, "3")])
    assert [w.available for w in wallet_update.latest(plan).values()] == ["2"]


def test_a_new_transaction_takes_the_status_of_its_newest_report_and_the_facts_of_its_first() -> None:
    changes = transaction.resolve(transaction.reports(merge([tx(0, 10, "confirmed"), tx(1, 5, "pending")])), {})
    [row] = changes.created
    assert (row.status, row.details, row.reported_at) == ("confirmed", "details 0", T0 + timedelta(seconds=10))
    assert changes.refused == [] and changes.updated == []


def test_a_repeat_older_than_the_stored_report_is_accepted_but_changes_nothing() -> None:
    stored = {(1, "t1"): StoredTransaction("deposit", "BTC", Decimal(1), "confirmed", "", T0 + timedelta(seconds=10))}
    changes = transaction.resolve(transaction.reports(merge([tx(0, 5, "pending")])), stored)
    assert changes == transaction.TransactionChanges()


def test_a_repeat_newer_than_the_stored_report_moves_status_details_and_time() -> None:
    stored = {(1, "t1"): StoredTransaction("deposit", "BTC", Decimal(1), "pending", "", T0 + timedelta(seconds=5))}
    changes = transaction.resolve(transaction.reports(merge([tx(0, 12, "failed"), tx(1, 10, "confirmed")])), stored)
    [row] = changes.updated
    assert (row.status, row.details, row.reported_at) == ("failed", "details 0", T0 + timedelta(seconds=12))


def test_a_row_stored_before_reports_were_ordered_takes_any_report() -> None:
    stored = {(1, "t1"): StoredTransaction("deposit", "BTC", Decimal(1), "pending", "", None)}
    [row] = transaction.resolve(transaction.reports(merge([tx(0, 1, "confirmed")])), stored).updated
    assert (row.status, row.reported_at) == ("confirmed", T0 + timedelta(seconds=1))


def test_an_old_repeat_with_other_facts_is_still_refused() -> None:
    """Order decides status and details only; immutable facts are checked whatever the report's time."""
    stored = {(1, "t1"): StoredTransaction("deposit", "BTC", Decimal(1), "confirmed", "", T0 + timedelta(seconds=10))}
    changes = transaction.resolve(transaction.reports(merge([tx(0, 5, "pending", amount="2")])), stored)
    assert [r.reason for r in changes.refused] == ["transaction.transaction_id: 't1' already recorded with another amount"]


def test_the_client_status_is_the_newest_report_and_every_report_keeps_its_history_row() -> None:
    plan = merge([status(0, 10, "paused"), status(1, 5, "error")])
    patch = plan.part(CLIENT_ROWS.name, dict)[1]
    assert (patch.fields["status"], patch.status_at) == ("paused", T0 + timedelta(seconds=10))
    assert patch.fields["last_seen"] == T0 + timedelta(seconds=1)  # arrival, not the bot's order
    assert [w.status for w in plan.part(STATUS.name, list)] == ["paused", "error"]


def test_a_registration_without_a_status_report_leaves_the_status_unordered() -> None:
    """A registration means active, like the server's own stream-open bookkeeping: not a report to order."""
    plan = merge([RegisterWrite(sent(0, 3), 1, "active", "Alpha", "", "", "")])
    patch = plan.part(CLIENT_ROWS.name, dict)[1]
    assert patch.fields["status"] == "active" and patch.status_at is None
