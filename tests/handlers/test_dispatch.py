"""dispatch(): table coverage, recorded refusals, storage errors, and that it never raises."""

from __future__ import annotations

import asyncio
import inspect
import uuid
from decimal import Decimal

import pytest

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.handlers.clients import KNOWN_CLIENTS
from apps.crypto.grpc.services.handlers.dispatch import Dispatcher
from apps.crypto.grpc.services.handlers.table import KINDS
from apps.crypto.grpc.services.ingest.buffer import IngestBuffer
from apps.crypto.models import Client, LogEntry, RejectedMessage, Transaction, Wallet

from .conftest import Send, context


def test_table_covers_exactly_the_payload_oneof() -> None:
    oneof = pb2.ClientMessage.DESCRIPTOR.oneofs_by_name["payload"]
    assert set(KINDS) == {field.name for field in oneof.fields}
    # checking is synchronous and pure: storing is the ingest buffer's job
    assert not any(inspect.iscoroutinefunction(kind.check) for kind in KINDS.values())


async def rejections(client_id: str) -> list[tuple[str, str, str]]:
    rows = RejectedMessage.objects.filter(client_id=client_id).order_by("pk")
    return [(r.message_id, r.payload_type, r.reason) async for r in rows]


async def test_empty_payload_is_rejected_and_recorded(send: Send, client_id: str) -> None:
    assert await send(message_id="m-empty") == "empty payload"
    assert await rejections(client_id) == [("m-empty", "", "empty payload")]


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("abc", "wallet_update.balance_available: not a decimal: 'abc'"),
        ("NaN", "wallet_update.balance_available: not a decimal: 'NaN'"),
        ("Infinity", "wallet_update.balance_available: not a decimal: 'Infinity'"),
        ("1e999", "wallet_update.balance_available: more than 20 integer digits: '1e999'"),
        ("", "wallet_update.balance_available: empty, expected a decimal"),
        ("1.0000000000000000001", "wallet_update.balance_available: more than 18 decimal places: "
                                  "'1.0000000000000000001'"),
        ("-5", "wallet_update.balance_available: negative: '-5'"),
    ],
)
async def test_bad_balance_is_rejected_and_the_stored_wallet_kept(send: Send, client_id: str, raw: str,
                                                                  reason: str) -> None:
    good = pb2.WalletUpdate(wallet_id="w", symbol="BTC", balance_available="3.5", balance_locked="1")
    assert await send(wallet_update=good) is None
    assert await send(log=pb2.LogEntry(message="kept")) is None
    bad = pb2.WalletUpdate(wallet_id="w", symbol="BTC", balance_available=raw, balance_locked="2")
    assert await send(wallet_update=bad, message_id="m-bad") == reason
    row = await Wallet.objects.aget(client__client_id=client_id)
    assert (row.balance_available, row.balance_locked) == (Decimal("3.5"), Decimal(1))
    assert await LogEntry.objects.filter(client__client_id=client_id, message="kept").aexists()
    assert await rejections(client_id) == [("m-bad", "wallet_update", reason)]


async def test_bad_transaction_amount_is_rejected(send: Send, client_id: str) -> None:
    report = pb2.TransactionReport(transaction_id="t", type="deposit", symbol="BTC", amount="1e999")
    assert await send(transaction=report) == "transaction.amount: more than 20 integer digits: '1e999'"
    assert not await Transaction.objects.filter(client__client_id=client_id).aexists()


async def test_unknown_transaction_type_is_rejected(send: Send, client_id: str) -> None:
    report = pb2.TransactionReport(transaction_id="t", type="airdrop", symbol="BTC", amount="1")
    reason = "transaction.type: 'airdrop' is not one of deposit, withdrawal, transfer"
    assert await send(transaction=report) == reason
    assert not await Transaction.objects.filter(client__client_id=client_id).aexists()
    assert [r[1:] for r in await rejections(client_id)] == [("transaction", reason)]


async def test_text_over_the_stream_limit_is_rejected(send: Send, client_id: str) -> None:
    assert await send(log=pb2.LogEntry(message="x" * 50), max_text_chars=50) is None
    reason = await send(log=pb2.LogEntry(message="x" * 51), max_text_chars=50)
    assert reason == "log.message: too long (51 chars, max 50)"
    assert await LogEntry.objects.filter(client__client_id=client_id).acount() == 1


async def test_text_over_the_column_limit_is_rejected(send: Send, client_id: str) -> None:
    update = pb2.WalletUpdate(wallet_id="w", symbol="S" * 33, balance_available="1", balance_locked="0")
    assert await send(wallet_update=update) == "wallet_update.symbol: too long (33 chars, max 32)"
    registration = pb2.ClientRegistration(client_name="n" * 256)
    assert await send(register=registration) == "register.client_name: too long (256 chars, max 255)"
    assert (await Client.objects.aget(client_id=client_id)).name == ""


async def test_missing_identifiers_are_rejected(send: Send) -> None:
    assert await send(wallet_update=pb2.WalletUpdate(symbol="BTC")) == "wallet_update.wallet_id: required"
    assert await send(transaction=pb2.TransactionReport(type="deposit")) == "transaction.transaction_id: required"


async def test_oversize_client_id_is_rejected_not_raised(dispatch: Dispatcher, ingest: IngestBuffer) -> None:
    client_id = "c" * 129
    reason = await dispatch(context(client_id), pb2.ClientMessage(heartbeat=pb2.HeartbeatUpdate()))
    assert reason == "client_id: too long (129 chars, max 128)"
    await ingest.settle()
    assert not await Client.objects.filter(client_id=client_id).aexists()
    assert await RejectedMessage.objects.filter(client_id=client_id[:128], payload_type="heartbeat").aexists()


async def test_storage_error_is_recorded_and_the_client_row_recovers(send: Send, client_id: str) -> None:
    assert await send(heartbeat=pb2.HeartbeatUpdate()) is None
    await Client.objects.filter(client_id=client_id).adelete()  # the cached pk is now stale
    update = pb2.WalletUpdate(wallet_id="w", symbol="BTC", balance_available="1", balance_locked="0")
    assert await send(wallet_update=update, message_id="m-stale") is None  # accepted; the write fails later
    assert await rejections(client_id) == [("m-stale", "wallet_update", "storage error: IntegrityError")]
    assert await send(wallet_update=update) is None
    assert await Wallet.objects.filter(client__client_id=client_id).acount() == 1


async def test_cancellation_propagates(dispatch: Dispatcher, ingest: IngestBuffer) -> None:
    client_id = f"bot-{uuid.uuid4()}"
    message = pb2.ClientMessage(log=pb2.LogEntry(message="never mind"))
    task = asyncio.ensure_future(dispatch(context(client_id), message))
    await asyncio.sleep(0)  # let it reach its first database await
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await ingest.settle()
    assert not await RejectedMessage.objects.filter(client_id=client_id).aexists()
    assert not await LogEntry.objects.filter(client__client_id=client_id).aexists()


async def test_an_ack_is_forwarded_without_a_client_lookup(ingest: IngestBuffer) -> None:
    """An ack never touches the Client row: a waiting caller gets it even when that row is not cached
    (a fleet larger than the cache) and without a database round trip on the ack's path."""
    forwarded: list[str] = []

    async def forward(ctx, ack) -> bool:
        forwarded.append(ack.command_id)
        return True  # a waiting caller's replica records it

    client_id = f"bot-{uuid.uuid4()}"
    dispatch = Dispatcher(ingest, {"command_ack": forward})
    ack = common_pb2.CommandAck(command_id="c-1", success=True)
    assert await dispatch(context(client_id), pb2.ClientMessage(command_ack=ack)) is None
    await ingest.settle()
    assert forwarded == ["c-1"]
    assert KNOWN_CLIENTS.get(client_id) is None
    assert not await Client.objects.filter(client_id=client_id).aexists()
