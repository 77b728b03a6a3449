"""How a batch of checked writes folds, kind by kind, and the pure decisions of store time. No database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from apps.crypto.grpc.services.handlers import command_ack, transaction, wallet_update
from apps.crypto.grpc.services.handlers.clients import CLIENT_ROWS
from apps.crypto.grpc.services.handlers.command_ack import AckWrite
from apps.crypto.grpc.services.handlers.heartbeat import HeartbeatWrite
from apps.crypto.grpc.services.handlers.log import LOG, LogWrite
from apps.crypto.grpc.services.handlers.registration import RegisterWrite
from apps.crypto.grpc.services.handlers.status import STATUS, StatusWrite
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import StoredTransaction, TransactionWrite
from apps.crypto.grpc.services.handlers.wallet_update import WalletWrite
from apps.crypto.grpc.services.inbound import MessageContext, Refusal
from apps.crypto.grpc.services.ingest.plan import Plan, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def merge(writes: list[Write]) -> Plan:
    return BatchWriter(PARTS).fold(writes)


def clients(plan: Plan) -> dict:
    return plan.part(CLIENT_ROWS.name, dict)


def ctx(client_id: str = "a", n: int = 0) -> MessageContext:
    """The n-th message of a client, received n seconds after T0."""
    return MessageContext(client_id, f"{client_id}-m{n}", "r1", T0 + timedelta(seconds=n))


def wallet(n: int, available: str, client: str = "a", pk: int = 1, wallet_id: str = "w", symbol: str = "BTC"
           ) -> WalletWrite:
    return WalletWrite(ctx(client, n), pk, wallet_id, symbol, available, "0", None)


def tx(n: int, amount: str = "2.25", status: str = "pending", type: str = "deposit", symbol: str = "ETH",
       transaction_id: str = "t1", client: str = "a", pk: int = 1) -> TransactionWrite:
    return TransactionWrite(ctx(client, n), pk, transaction_id, type, symbol, amount, status, "")


def test_wallet_updates_merge_per_key_and_the_last_wins() -> None:
    plan = merge([wallet(0, "1"), wallet(1, "2", symbol="ETH"), wallet(2, "3"), wallet(3, "9", client="b", pk=2)])
    assert {key: w.available for key, w in wallet_update.latest(plan).items()} == {
        (1, "w", "BTC"): "3", (1, "w", "ETH"): "2", (2, "w", "BTC"): "9"}


def test_heartbeats_collapse_to_the_last_one_per_client() -> None:
    plan = merge([HeartbeatWrite(ctx("a", n), 1) for n in range(5)] + [HeartbeatWrite(ctx("b", 7), 2)])
    assert {pk: patch.fields for pk, patch in clients(plan).items()} == {
        1: {"last_seen": T0 + timedelta(seconds=4)}, 2: {"last_seen": T0 + timedelta(seconds=7)}}
    assert not any(patch.restore for patch in clients(plan).values())


def test_client_columns_fold_in_message_order_and_every_status_keeps_its_row() -> None:
    plan = merge([
        StatusWrite(ctx("a", 0), 1, "paused", "operator"),
        RegisterWrite(ctx("a", 1), 1, "active", "Alpha", "trader", "2", ""),
        StatusWrite(ctx("a", 2), 1, "error", "exchange down"),
        HeartbeatWrite(ctx("a", 3), 1),
    ])
    patch = clients(plan)[1]
    assert patch.restore and patch.client_id == "a"
    assert (patch.fields["status"], patch.fields["name"], patch.fields["last_seen"]) == (
        "error", "Alpha", T0 + timedelta(seconds=3))
    assert [(w.status, w.details) for w in plan.part(STATUS.name, list)] == [("paused", "operator"), ("error", "exchange down")]


def test_lists_and_refusals_keep_message_order() -> None:
    refused = Refusal(ctx("a", 1), "wallet_update", "bad")
    plan = merge([LogWrite(ctx("a", 0), 1, "info", "one", ""), refused, LogWrite(ctx("a", 2), 1, "info", "two", "")])
    assert [w.message for w in plan.part(LOG.name, list)] == ["one", "two"]
    assert plan.refusals == [refused]


def test_a_new_transaction_keeps_its_first_facts_and_its_latest_status() -> None:
    plan = merge([tx(0, status="pending"), tx(1, amount="2.250", status="confirmed"), tx(2, amount="3", status="x")])
    changes = transaction.resolve(transaction.reports(plan), {})
    [row] = changes.created
    assert (row.type, row.symbol, row.amount, row.status) == ("deposit", "ETH", "2.25", "confirmed")
    assert changes.updated == []
    assert [(r.ctx.message_id, r.reason, r.at_flush) for r in changes.refused] == [
        ("a-m2", "transaction.transaction_id: 't1' already recorded with another amount", True)]


def test_a_stored_transaction_is_updated_only_by_a_newer_report() -> None:
    """A newer report moves the row even when its status is the same: its time is what guards the row
    against an older report stored later. A report as old as the stored one, unchanged, writes nothing."""
    later = T0 + timedelta(seconds=1)
    stored = {(1, "t1"): StoredTransaction("deposit", "ETH", Decimal("2.25"), "pending", "", T0),
              (1, "t2"): StoredTransaction("deposit", "ETH", Decimal("2.25"), "pending", "", T0),
              (1, "t3"): StoredTransaction("deposit", "ETH", Decimal("2.25"), "pending", "", later)}
    plan = merge([tx(0, transaction_id="t1", status="pending"), tx(1, transaction_id="t2", status="pending"),
                  tx(0, transaction_id="t3", status="confirmed")])
    changes = transaction.resolve(transaction.reports(plan), stored)
    assert changes.created == [] and changes.refused == []
    assert [(r.transaction_id, r.status, r.reported_at) for r in changes.updated] == [("t2", "pending", later)]


def test_a_repeat_that_disagrees_with_the_stored_row_is_refused_with_every_differing_fact() -> None:
    stored = {(1, "t1"): StoredTransaction("deposit", "ETH", Decimal("2.25"), "pending", "")}
    changes = transaction.resolve(transaction.reports(merge([tx(0, amount="9", type="withdrawal", status="done")])), stored)
    assert [r.reason for r in changes.refused] == [
        "transaction.transaction_id: 't1' already recorded with another type, amount"]
    assert changes.updated == [] and changes.created == []


def test_the_same_transaction_id_of_two_clients_is_two_rows() -> None:
    changes = transaction.resolve(transaction.reports(merge([tx(0), tx(0, client="b", pk=2, amount="5")])), {})
    assert sorted((r.client_pk, r.amount) for r in changes.created) == [(1, "2.25"), (2, "5")]


def ack(client: str, n: int, command_id: str = "c1", success: bool = True) -> AckWrite:
    return AckWrite(ctx(client, n), command_id, success, f"m{n}", "")


def test_an_ack_belongs_to_the_stored_owner_or_else_to_its_first_sender() -> None:
    plan = merge([ack("a", 0), ack("b", 1), ack("a", 2, success=False), ack("b", 3, command_id="c2")])
    rows, refused = command_ack.resolve(plan.part(command_ack.COMMAND_ACK.name, dict), {"c2": "a"})
    assert [(r.command_id, r.client_id, r.success, r.message, r.finished_at) for r in rows] == [
        ("c1", "a", False, "m2", T0 + timedelta(seconds=2))]
    assert [(r.ctx.message_id, r.reason) for r in refused] == [
        ("b-m1", "command_ack.command_id: 'c1' belongs to another client"),
        ("b-m3", "command_ack.command_id: 'c2' belongs to another client")]
