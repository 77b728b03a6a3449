"""Two batches stored out of order (the newer report first, as when a lagging replica flushes late):
the database keeps the newer report. Against the real test database (SQLite, or TEST_DATABASE_URL)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async

from apps.crypto.grpc.services.handlers import transaction as transaction_kind
from apps.crypto.grpc.services.handlers.clients import client_pk
from apps.crypto.grpc.services.handlers.status import StatusWrite
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import StoredTransaction, TransactionWrite
from apps.crypto.grpc.services.handlers.wallet_update import WalletWrite
from apps.crypto.grpc.services.inbound import MessageContext
from apps.crypto.grpc.services.ingest.plan import FlushReport, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter
from apps.crypto.models import Client, RejectedMessage, StatusChange, Transaction, Wallet

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)


@sync_to_async
def store(writes: Sequence[Write]) -> FlushReport:
    return BatchWriter(PARTS)(writes)


def sent(client_id: str, at: float, replica: str) -> MessageContext:
    """A message the bot stamped `at` seconds after T0, received (late) by `replica` just now."""
    return MessageContext(client_id, uuid.uuid4().hex, replica, datetime.now(UTC),
                          sent_at=T0 + timedelta(seconds=at))


@pytest.fixture
async def bot() -> tuple[str, int]:
    client_id = f"bot-{uuid.uuid4()}"
    return client_id, await client_pk(client_id)


async def test_a_wallet_keeps_the_newer_balance_when_the_older_is_stored_last(bot) -> None:
    client_id, pk = bot
    await store([WalletWrite(sent(client_id, 10, "B"), pk, "w", "BTC", "90", "0", None)])
    await store([WalletWrite(sent(client_id, 5, "A"), pk, "w", "BTC", "100", "1", None)])
    row = await Wallet.objects.aget(client_id=pk, wallet_id="w", symbol="BTC")
    assert (row.balance_available, row.balance_locked, row.reported_at) == (
        Decimal(90), Decimal(0), T0 + timedelta(seconds=10))
    await store([WalletWrite(sent(client_id, 10.5, "A"), pk, "w", "BTC", "80", "0", None)])  # newer: taken
    assert (await Wallet.objects.aget(client_id=pk)).balance_available == Decimal(80)


async def test_a_wallet_stored_before_reports_were_ordered_takes_the_next_update(bot) -> None:
    client_id, pk = bot
    await Wallet.objects.acreate(client_id=pk, wallet_id="w", symbol="BTC", balance_available=1, balance_locked=0)
    await store([WalletWrite(sent(client_id, 1, "A"), pk, "w", "BTC", "2", "0", None)])
    row = await Wallet.objects.aget(client_id=pk)
    assert (row.balance_available, row.reported_at) == (Decimal(2), T0 + timedelta(seconds=1))


async def test_a_transaction_keeps_the_newer_status_and_the_older_repeat_is_not_refused(bot) -> None:
    client_id, pk = bot
    newer = TransactionWrite(sent(client_id, 10, "B"), pk, "t", "deposit", "BTC", "1.5", "confirmed", "block 7")
    older = TransactionWrite(sent(client_id, 5, "A"), pk, "t", "deposit", "BTC", "1.50", "pending", "")
    assert (await store([newer])).refused == []
    assert (await store([older])).refused == []
    row = await Transaction.objects.aget(client_id=pk, transaction_id="t")
    assert (row.status, row.details, row.reported_at) == ("confirmed", "block 7", T0 + timedelta(seconds=10))
    assert not await RejectedMessage.objects.filter(client_id=client_id).aexists()


async def test_a_transaction_update_is_guarded_in_sql_against_a_report_stored_meanwhile(bot, monkeypatch) -> None:
    """resolve() decided on a stale read (another replica stored a newer report since): the UPDATE's own
    condition still leaves the newer report in place."""
    client_id, pk = bot
    await store([TransactionWrite(sent(client_id, 10, "B"), pk, "t", "deposit", "BTC", "1", "confirmed", "")])
    stale = {(pk, "t"): StoredTransaction("deposit", "BTC", Decimal(1), "pending", "", T0)}
    monkeypatch.setattr(transaction_kind, "_stored", lambda groups: stale)
    older = TransactionWrite(sent(client_id, 5, "A"), pk, "t", "deposit", "BTC", "1", "failed", "")
    assert transaction_kind.resolve({(pk, "t"): [older]}, stale).updated  # the stale read says: update
    assert (await store([older])).refused == []
    row = await Transaction.objects.aget(client_id=pk, transaction_id="t")
    assert (row.status, row.reported_at) == ("confirmed", T0 + timedelta(seconds=10))


async def test_the_client_status_keeps_the_newer_report_and_both_reports_keep_their_rows(bot) -> None:
    client_id, pk = bot
    await store([StatusWrite(sent(client_id, 10, "B"), pk, "paused", "newer")])
    await store([StatusWrite(sent(client_id, 5, "A"), pk, "error", "older")])
    client = await Client.objects.aget(pk=pk)
    assert (client.status, client.status_reported_at) == ("paused", T0 + timedelta(seconds=10))
    history = StatusChange.objects.filter(client_id=pk).order_by("pk").values_list("status", "details")
    assert [h async for h in history] == [("paused", "newer"), ("error", "older")]
    await store([StatusWrite(sent(client_id, 11, "A"), pk, "active", "resumed")])  # newer: taken
    assert (await Client.objects.aget(pk=pk)).status == "active"


async def test_an_older_status_report_still_moves_last_seen(bot) -> None:
    """Only the status is ordered: last_seen says when a replica last heard the bot, whatever it said."""
    client_id, pk = bot
    await store([StatusWrite(sent(client_id, 10, "B"), pk, "paused", "")])
    late = sent(client_id, 5, "A")
    await store([StatusWrite(late, pk, "error", "")])
    client = await Client.objects.aget(pk=pk)
    assert (client.status, client.last_seen) == ("paused", late.received_at)
