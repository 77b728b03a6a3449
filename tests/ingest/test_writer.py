"""The batch writer against the real test database: few statements per batch, and a bad write costs only itself."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.crypto.grpc.services.handlers.clients import KNOWN_CLIENTS, client_pk
from apps.crypto.grpc.services.handlers.heartbeat import HeartbeatWrite
from apps.crypto.grpc.services.handlers.log import LogWrite
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import TransactionWrite
from apps.crypto.grpc.services.handlers.wallet_update import WalletWrite
from apps.crypto.grpc.services.inbound import MessageContext, Refusal
from apps.crypto.grpc.services.ingest.plan import FlushReport, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter
from apps.crypto.models import Client, LogEntry, RejectedMessage, Transaction, Wallet

from .conftest import context


@sync_to_async
def write_counting(writes: Sequence[Write]) -> tuple[FlushReport, int]:
    with CaptureQueriesContext(connection) as queries:
        report = BatchWriter(PARTS)(writes)
    return report, len(queries)


def traffic(client_id: str, pk: int, n: int) -> list[Write]:
    """n rounds of the bench mix for one client: 4 wallet updates, 3 transactions, 3 heartbeats."""
    writes: list[Write] = []
    for i in range(n):
        writes += [WalletWrite(context(client_id), pk, f"w{k}", "BTC", f"{i}.{k}", "0.5", None) for k in range(4)]
        writes += [TransactionWrite(context(client_id), pk, f"t{i}-{k}", "deposit", "BTC", "1.25", "done", "")
                   for k in range(3)]
        writes += [HeartbeatWrite(context(client_id), pk) for _ in range(3)]
    return writes


async def new_clients(count: int) -> dict[str, int]:
    ids = [f"bot-{uuid.uuid4()}" for _ in range(count)]
    return {client_id: await client_pk(client_id) for client_id in ids}


async def test_a_batch_of_many_clients_is_stored_with_a_handful_of_statements() -> None:
    clients = await new_clients(20)
    writes = [w for client_id, pk in clients.items() for w in traffic(client_id, pk, 3)]  # 600 messages
    report, queries = await write_counting(writes)
    assert (report.written, report.refused, report.stale_clients) == (600, [], set())
    assert queries <= 12, queries  # one write per message would be 600
    for client_id in clients:
        wallets = {w.wallet_id: w.balance_available async for w in Wallet.objects.filter(client__client_id=client_id)}
        assert wallets == {f"w{k}": Decimal(f"2.{k}") for k in range(4)}  # the last update of each wallet
        assert await Transaction.objects.filter(client__client_id=client_id).acount() == 9
    last_beat = max(w.ctx.received_at for w in writes if isinstance(w, HeartbeatWrite)
                    and w.ctx.client_id == client_id)
    assert (await Client.objects.aget(client_id=client_id)).last_seen == last_beat


async def test_a_failing_batch_is_retried_one_by_one_and_only_the_bad_writes_are_refused() -> None:
    clients = await new_clients(2)
    (gone, gone_pk), (kept, kept_pk) = clients.items()
    await Client.objects.filter(pk=gone_pk).adelete()  # an operator deletes a row whose pk is cached
    writes: list[Write] = []
    for i in range(3):
        for client_id, pk in clients.items():
            writes += [WalletWrite(context(client_id), pk, "w", "BTC", f"{i}", "0", None),
                       TransactionWrite(context(client_id), pk, f"t{i}", "deposit", "BTC", "1", "", ""),
                       LogWrite(context(client_id), pk, "info", f"line {i}", "")]
    report, _ = await write_counting(writes)
    assert report.stale_clients == {gone}
    assert {(r.ctx.client_id, r.reason, r.at_flush) for r in report.refused} == {
        (gone, "storage error: IntegrityError", True)}
    assert len(report.refused) == 9
    assert await Transaction.objects.filter(client_id=kept_pk).acount() == 3
    assert (await Wallet.objects.aget(client_id=kept_pk)).balance_available == Decimal(2)
    assert [m async for m in LogEntry.objects.filter(client_id=kept_pk).order_by("pk").values_list(
        "message", flat=True)] == ["line 0", "line 1", "line 2"]
    stored = RejectedMessage.objects.filter(client_id=gone).values_list("message_id", "reason")
    assert sorted([m async for m in stored]) == sorted(
        (w.ctx.message_id, "storage error: IntegrityError") for w in writes if w.ctx.client_id == gone)
    assert not await RejectedMessage.objects.filter(client_id=kept).aexists()
    KNOWN_CLIENTS.forget(gone)


async def test_a_refusal_whose_message_carries_an_oversize_id_is_stored_truncated() -> None:
    """RejectedMessage columns are 128 chars: a bot's overlong ids must not fail the batch."""
    long_id = "c" * 300
    ctx = MessageContext(long_id, "m" * 300, "r1", context("x").received_at)
    report, _ = await write_counting([Refusal(ctx, "heartbeat", "client_id: too long (300 chars, max 128)")])
    assert report.refused == []  # made at dispatch, counted there
    assert await RejectedMessage.objects.filter(client_id=long_id[:128], message_id="m" * 128).aexists()


async def test_a_repeat_compares_with_the_stored_amount_as_the_database_returns_it() -> None:
    """SQLite keeps decimals as floating point: 0.1 comes back as 0.1 only through the field's converter."""
    [(client_id, pk)] = (await new_clients(1)).items()
    first = [TransactionWrite(context(client_id), pk, "t", "deposit", "BTC", "0.1", "pending", "")]
    repeat = [TransactionWrite(context(client_id), pk, "t", "deposit", "BTC", "0.10", "confirmed", "")]
    assert (await write_counting(first))[0].refused == []
    assert (await write_counting(repeat))[0].refused == []
    row = await Transaction.objects.aget(client_id=pk, transaction_id="t")
    assert (row.amount, row.status) == (Decimal("0.1"), "confirmed")


async def test_a_table_briefly_gone_holds_the_batch_and_rejects_nothing() -> None:
    """A database blip (here the transactions table renamed away for a moment, as in a failover) is
    retried with backoff: every valid transaction is stored once it is back, none becomes a rejection."""
    import asyncio

    from apps.crypto.grpc.services.ingest.buffer import IngestBuffer

    [(client_id, pk)] = (await new_clients(1)).items()
    writes = [TransactionWrite(context(client_id), pk, f"blip-{n}", "deposit", "BTC", "1", "done", "")
              for n in range(300)]
    table = Transaction._meta.db_table

    @sync_to_async
    def rename(src: str, dst: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f'ALTER TABLE "{src}" RENAME TO "{dst}"')

    buffer = IngestBuffer(sync_to_async(BatchWriter(PARTS)), batch_size=100, interval=0.01, limit=1000)
    buffer.start()
    await rename(table, f"{table}_away")
    try:
        for write in writes:
            await buffer.put(write)
        await asyncio.sleep(0.6)  # several tries fail meanwhile
        assert buffer.pending == 300  # held, not refused
    finally:
        await rename(f"{table}_away", table)
    await asyncio.wait_for(buffer.settle(), 10)
    await buffer.close()
    assert await Transaction.objects.filter(client__client_id=client_id, transaction_id__startswith="blip-").acount() == 300
    assert not await RejectedMessage.objects.filter(client_id=client_id).aexists()
