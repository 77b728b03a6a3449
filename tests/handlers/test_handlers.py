"""Every payload, dispatched end to end, lands in the right rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection
from google.protobuf.timestamp_pb2 import Timestamp

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.handlers.dispatch import Dispatcher
from apps.crypto.grpc.services.handlers.lifecycle import client_connected, client_disconnected
from apps.crypto.grpc.services.ingest.buffer import IngestBuffer
from apps.crypto.models import (
    Client,
    ClientStatus,
    CommandOutcome,
    CommandRecord,
    ErrorReport,
    LogEntry,
    RejectedMessage,
    StatusChange,
    Transaction,
    Wallet,
)

from .conftest import Send, context


def _timestamp(when: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(when)
    return stamp


def wallet(available: str = "1.5", locked: str = "0", **extra: object) -> pb2.WalletUpdate:
    return pb2.WalletUpdate(wallet_id="main", symbol="BTC", balance_available=available, balance_locked=locked,
                            **extra)


def deposit(amount: str = "2.25", status: str = "pending", **extra: object) -> pb2.TransactionReport:
    fields = {"transaction_id": "tx-1", "type": "deposit", "symbol": "ETH", "amount": amount, "status": status}
    return pb2.TransactionReport(**{**fields, **extra})


async def test_register_fills_the_client_and_marks_it_active(send: Send, client_id: str) -> None:
    registration = pb2.ClientRegistration(client_name="Alpha", client_type="trader", version="1.2.3",
                                          api_url="https://alpha.example")
    assert await send(register=registration) is None
    row = await Client.objects.aget(client_id=client_id)
    assert (row.name, row.client_type, row.version, row.api_url) == ("Alpha", "trader", "1.2.3", "https://alpha.example")
    assert row.status == ClientStatus.ACTIVE and row.last_seen is not None


async def test_register_again_updates_in_place(send: Send, client_id: str) -> None:
    await send(register=pb2.ClientRegistration(client_name="Alpha", version="1"))
    await send(register=pb2.ClientRegistration(client_name="Alpha", version="2"))
    assert [c.version async for c in Client.objects.filter(client_id=client_id)] == ["2"]


async def test_wallet_update_upserts_one_row(send: Send, client_id: str) -> None:
    synced = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
    assert await send(wallet_update=wallet("1.5", "0.25", last_sync=_timestamp(synced))) is None
    assert await send(wallet_update=wallet("7.125", "0.5")) is None
    rows = [w async for w in Wallet.objects.filter(client__client_id=client_id)]
    assert len(rows) == 1
    assert (rows[0].balance_available, rows[0].balance_locked) == (Decimal("7.125"), Decimal("0.5"))
    assert rows[0].last_sync is not None and rows[0].last_sync > synced  # unset last_sync -> received_at


@pytest.mark.skipif(connection.vendor == "sqlite", reason="SQLite keeps DECIMAL columns as REAL (~15 digits)")
async def test_full_precision_balance_survives_storage(send: Send, client_id: str) -> None:
    assert await send(wallet_update=wallet("12345678901234567890.123456789012345678", "0.000000000000000001")) is None
    row = await Wallet.objects.aget(client__client_id=client_id)
    assert row.balance_available == Decimal("12345678901234567890.123456789012345678")
    assert row.balance_locked == Decimal("0.000000000000000001")


async def test_wallet_last_sync_is_taken_from_the_payload(send: Send, client_id: str) -> None:
    synced = datetime(2025, 5, 6, 7, 8, 9, 500000, tzinfo=UTC)
    await send(wallet_update=wallet(last_sync=_timestamp(synced)))
    row = await Wallet.objects.aget(client__client_id=client_id)
    assert row.last_sync == synced


async def test_wallets_differ_by_symbol_and_wallet_id(send: Send, client_id: str) -> None:
    await send(wallet_update=wallet())
    await send(wallet_update=pb2.WalletUpdate(wallet_id="main", symbol="ETH", balance_available="3",
                                              balance_locked="0"))
    await send(wallet_update=pb2.WalletUpdate(wallet_id="cold", symbol="BTC", balance_available="4",
                                              balance_locked="0"))
    assert await Wallet.objects.filter(client__client_id=client_id).acount() == 3


async def test_transaction_is_stored(send: Send, client_id: str) -> None:
    assert await send(transaction=deposit(details="from exchange")) is None
    row = await Transaction.objects.aget(client__client_id=client_id)
    assert (row.transaction_id, row.type, row.symbol, row.status, row.details) == (
        "tx-1", "deposit", "ETH", "pending", "from exchange")
    assert row.amount == Decimal("2.25")


async def test_repeated_transaction_is_idempotent_and_updates_status(send: Send, client_id: str) -> None:
    assert await send(transaction=deposit(status="pending")) is None
    assert await send(transaction=deposit(status="pending")) is None
    assert await send(transaction=deposit(amount="2.250", status="confirmed")) is None  # same amount
    rows = [t async for t in Transaction.objects.filter(client__client_id=client_id)]
    assert [(t.transaction_id, t.status) for t in rows] == [("tx-1", "confirmed")]


async def rejections(client_id: str) -> list[tuple[str, str]]:
    rows = RejectedMessage.objects.filter(client_id=client_id).order_by("pk")
    return [(r.payload_type, r.reason) async for r in rows]


async def test_repeated_transaction_with_other_facts_is_rejected(send: Send, client_id: str) -> None:
    await send(transaction=deposit(amount="2.25"))
    # only the stored row can tell: the refusal is found when the batch is written, and recorded
    assert await send(transaction=deposit(amount="9", type="withdrawal", status="confirmed")) is None
    assert await rejections(client_id) == [
        ("transaction", "transaction.transaction_id: 'tx-1' already recorded with another type, amount")]
    row = await Transaction.objects.aget(client__client_id=client_id)
    assert (row.type, row.amount, row.status) == ("deposit", Decimal("2.25"), "pending")


async def test_same_transaction_id_on_two_clients_is_two_rows(send: Send, dispatch: Dispatcher,
                                                               ingest: IngestBuffer) -> None:
    other = f"bot-{uuid.uuid4()}"
    await send(transaction=deposit())
    assert await dispatch(context(other), pb2.ClientMessage(client_id=other, transaction=deposit())) is None
    await ingest.settle()
    assert await Transaction.objects.filter(transaction_id="tx-1", client__client_id=other).acount() == 1


async def test_status_update_records_history_and_client_status(send: Send, client_id: str) -> None:
    status = pb2.StatusUpdate(status=common_pb2.CLIENT_STATUS_PAUSED, details="operator asked")
    assert await send(status=status) is None
    client = await Client.objects.aget(client_id=client_id)
    assert client.status == ClientStatus.PAUSED
    history = [(s.status, s.details) async for s in StatusChange.objects.filter(client=client)]
    assert history == [("paused", "operator asked")]


async def test_heartbeat_updates_last_seen(send: Send, client_id: str) -> None:
    await send(heartbeat=pb2.HeartbeatUpdate())
    first = (await Client.objects.aget(client_id=client_id)).last_seen
    await send(heartbeat=pb2.HeartbeatUpdate())
    second = (await Client.objects.aget(client_id=client_id)).last_seen
    assert first is not None and second is not None and second > first


async def test_error_report_is_stored(send: Send, client_id: str) -> None:
    report = pb2.ErrorReport(severity="critical", message="exchange down", traceback="Traceback ...")
    assert await send(error=report) is None
    row = await ErrorReport.objects.aget(client__client_id=client_id)
    assert (row.severity, row.message, row.traceback) == ("critical", "exchange down", "Traceback ...")


async def test_log_entry_is_stored(send: Send, client_id: str) -> None:
    assert await send(log=pb2.LogEntry(level="INFO", message="tick", extra_data='{"n": 1}')) is None
    row = await LogEntry.objects.aget(client__client_id=client_id)
    assert (row.level, row.message, row.extra_data) == ("INFO", "tick", '{"n": 1}')


async def new_command(client_id: str) -> CommandRecord:
    return await CommandRecord.objects.acreate(command_id=str(uuid.uuid4()), client_id=client_id, kind="pause",
                                               payload={"reason": "x"})


async def test_ack_closes_the_command(send: Send, client_id: str) -> None:
    command = await new_command(client_id)
    ack = common_pb2.CommandAck(command_id=command.command_id, success=True, message="paused")
    assert await send(command_ack=ack) is None
    await command.arefresh_from_db()
    assert (command.outcome, command.ack_success, command.ack_message, command.kind) == (
        CommandOutcome.ACKED, True, "paused", "pause")
    assert command.finished_at is not None


async def test_failed_ack_marks_the_command_failed(send: Send, client_id: str) -> None:
    command = await new_command(client_id)
    assert await send(command_ack=common_pb2.CommandAck(command_id=command.command_id, error="busy")) is None
    await command.arefresh_from_db()
    assert (command.outcome, command.ack_success, command.ack_error) == (CommandOutcome.FAILED, False, "busy")


async def test_ack_for_unknown_command_is_still_recorded(send: Send, client_id: str) -> None:
    command_id = str(uuid.uuid4())
    assert await send(command_ack=common_pb2.CommandAck(command_id=command_id, success=True)) is None
    row = await CommandRecord.objects.aget(command_id=command_id)
    assert (row.client_id, row.outcome) == (client_id, CommandOutcome.ACKED)


async def test_ack_for_another_clients_command_is_refused(send: Send, client_id: str) -> None:
    owner = f"bot-{uuid.uuid4()}"
    command = await new_command(owner)
    assert await send(command_ack=common_pb2.CommandAck(command_id=command.command_id, success=True)) is None
    assert await rejections(client_id) == [
        ("command_ack", f"command_ack.command_id: {command.command_id!r} belongs to another client")]
    await command.arefresh_from_db()
    assert (command.client_id, command.outcome, command.ack_success) == (owner, CommandOutcome.QUEUED, None)


async def test_connect_and_disconnect_bookkeeping(client_id: str) -> None:
    await client_connected(client_id, "replica-a")
    client = await Client.objects.aget(client_id=client_id)
    assert client.status == ClientStatus.ACTIVE and client.last_seen is not None
    await client_disconnected(client_id, "stream closed")
    client = await Client.objects.aget(client_id=client_id)
    assert client.status == ClientStatus.DISCONNECTED
    history = [(s.status, s.details) async for s in StatusChange.objects.filter(client=client).order_by("pk")]
    assert history == [("active", "connected via replica-a"), ("disconnected", "disconnected: stream closed")]


async def test_a_stopped_client_stays_stopped_on_disconnect(send: Send, client_id: str) -> None:
    await client_connected(client_id, "replica-a")
    await send(status=pb2.StatusUpdate(status=common_pb2.CLIENT_STATUS_STOPPED))
    await client_disconnected(client_id, "stream closed")
    assert (await Client.objects.aget(client_id=client_id)).status == ClientStatus.STOPPED
