"""The writer stores a receipting bot's (client_id, message_id) once and names it in the report's receipts."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async

from apps.crypto.grpc.services.handlers.clients import client_pk
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import TransactionWrite
from apps.crypto.grpc.services.inbound import Refusal
from apps.crypto.grpc.services.ingest.receipts import Forwarded
from apps.crypto.grpc.services.ingest.writer import BatchWriter
from apps.crypto.grpc.services.handlers.log import LogWrite
from apps.crypto.models import LogEntry, ReceivedMessage, RejectedMessage, Transaction

from .conftest import context

write = sync_to_async(BatchWriter(PARTS))


def tx(client_id: str, pk: int, message_id: str, transaction_id: str, receipt: bool = True,
       sent_at: datetime | None = None, amount: str = "1") -> TransactionWrite:
    ctx = replace(context(client_id), message_id=message_id, receipt=receipt, sent_at=sent_at)
    return TransactionWrite(ctx, pk, transaction_id, "deposit", "BTC", amount, "pending", "")


async def test_a_resend_is_receipted_again_and_stored_once(client_id: str) -> None:
    pk = await client_pk(client_id)
    first = [tx(client_id, pk, f"m{i}", f"t{i}") for i in range(5)]
    report = await write(first)
    assert report.receipts == {client_id: [f"m{i}" for i in range(5)]}
    # the bot reconnects and resends m3, m4 (no receipt reached it) with a new one; a log of m5 too
    again = [tx(client_id, pk, "m3", "t3"), tx(client_id, pk, "m4", "t4"), tx(client_id, pk, "m5", "t5"),
             tx(client_id, pk, "m5", "t5")]
    report = await write(again)
    assert report.receipts == {client_id: ["m3", "m4", "m5"]}
    assert await Transaction.objects.filter(client_id=pk).acount() == 6
    assert await ReceivedMessage.objects.filter(client_id=client_id).acount() == 6


async def test_a_resend_never_moves_state_back(client_id: str) -> None:
    pk = await client_pk(client_id)
    await write([tx(client_id, pk, "m1", "t1")])
    confirmed = tx(client_id, pk, "m2", "t1")
    confirmed.status = "confirmed"
    await write([confirmed])
    await write([tx(client_id, pk, "m1", "t1")])  # the pending report again, after the confirmation
    stored = await Transaction.objects.aget(client_id=pk, transaction_id="t1")
    assert stored.status == "confirmed"


async def test_an_invalid_message_is_receipted_once_rejected_once(client_id: str) -> None:
    bad = Refusal(replace(context(client_id), message_id="bad-1", receipt=True), "transaction", "transaction.type: no")
    assert (await write([bad])).receipts == {client_id: ["bad-1"]}
    assert (await write([bad])).receipts == {client_id: ["bad-1"]}
    assert await RejectedMessage.objects.filter(client_id=client_id, message_id="bad-1").acount() == 1


async def test_bots_without_receipts_are_untouched(client_id: str) -> None:
    pk = await client_pk(client_id)
    report = await write([tx(client_id, pk, "same", "t1", receipt=False), tx(client_id, pk, "same", "t2", False)])
    assert report.receipts == {}
    assert await Transaction.objects.filter(client_id=pk).acount() == 2
    assert not await ReceivedMessage.objects.filter(client_id=client_id).aexists()


async def test_a_forwarded_ack_is_only_keyed_and_receipted(client_id: str) -> None:
    ack = Forwarded(replace(context(client_id), message_id=f"ack-{uuid.uuid4()}", receipt=True))
    assert (await write([ack])).receipts == {client_id: [ack.ctx.message_id]}
    assert await ReceivedMessage.objects.filter(client_id=client_id).acount() == 1


async def test_a_failing_write_is_not_receipted_and_the_rest_are(client_id: str) -> None:
    pk = await client_pk(client_id)
    other = f"bot-{uuid.uuid4()}"
    gone_pk = await client_pk(other)
    from apps.crypto.models import Client
    await Client.objects.filter(pk=gone_pk).adelete()  # its writes fail with an IntegrityError
    report = await write([tx(client_id, pk, "ok-1", "t1"), tx(other, gone_pk, "lost-1", "t1")])
    assert report.receipts == {client_id: ["ok-1"]}  # the failed one is resent by its bot later
    assert not await ReceivedMessage.objects.filter(client_id=other).aexists()


async def test_keys_past_the_retention_are_pruned_and_younger_ones_kept(client_id: str) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.crypto.grpc.services.ingest.writer import prune_received

    now = timezone.now()
    await ReceivedMessage.objects.all().adelete()  # filled as production fills it: in time order
    await ReceivedMessage.objects.abulk_create(
        [ReceivedMessage(client_id=client_id, message_id=f"old{n}", received_at=now - timedelta(days=8))
         for n in range(25)] +
        [ReceivedMessage(client_id=client_id, message_id=f"new{n}", received_at=now) for n in range(5)])
    deleted = await sync_to_async(prune_received)(now - timedelta(days=7), chunk=10)
    assert deleted == 25
    kept = {m async for m in ReceivedMessage.objects.filter(client_id=client_id).values_list("message_id", flat=True)}
    assert kept == {f"new{n}" for n in range(5)}


T0 = datetime(2026, 12, 1, tzinfo=UTC)


async def test_a_timestamped_idempotent_resend_is_stored_again_as_a_no_op_without_a_key(client_id: str) -> None:
    """A transaction (one row per transaction_id, status ordered by the bot's time) needs no key; a log
    line (a row per message) does."""
    pk = await client_pk(client_id)
    pending = tx(client_id, pk, "m1", "t1", sent_at=T0)
    confirmed = tx(client_id, pk, "m2", "t1", sent_at=T0 + timedelta(seconds=1))
    confirmed.status = "confirmed"
    log = LogWrite(replace(context(client_id), message_id="m3", receipt=True, sent_at=T0), pk, "info", "x", "")
    await write([pending, confirmed, log])
    report = await write([pending, log])  # the bot resends both after a reconnect, same ids and times
    assert report.receipts == {client_id: ["m1", "m3"]}
    stored = await Transaction.objects.aget(client_id=pk, transaction_id="t1")
    assert stored.status == "confirmed"
    assert await LogEntry.objects.filter(client_id=pk).acount() == 1
    assert [m async for m in ReceivedMessage.objects.filter(client_id=client_id).values_list(
        "message_id", flat=True)] == ["m3"]


async def test_a_resent_report_refused_at_flush_is_rejected_once(client_id: str) -> None:
    pk = await client_pk(client_id)
    await write([tx(client_id, pk, "m1", "t1", sent_at=T0)])
    other = tx(client_id, pk, "m2", "t1", sent_at=T0, amount="2")  # disagrees with the stored facts
    for _ in range(2):
        report = await write([other])
        assert report.receipts == {client_id: ["m2"]}
    assert await RejectedMessage.objects.filter(client_id=client_id, message_id="m2").acount() == 1
