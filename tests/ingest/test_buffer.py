"""IngestBuffer with the real writer: backpressure when full, order, and nothing lost on close."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence

from asgiref.sync import sync_to_async
from prometheus_client import REGISTRY

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.handlers.clients import client_pk
from apps.crypto.grpc.services.handlers.dispatch import Dispatcher
from apps.crypto.grpc.services.handlers.lifecycle import client_disconnected
from apps.crypto.grpc.services.ingest.buffer import IngestBuffer
from apps.crypto.grpc.services.handlers.log import LogWrite
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.ingest.plan import FlushReport, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter
from apps.crypto.models import Client, LogEntry, RejectedMessage, StatusChange, Transaction

from .conftest import context

STORE = sync_to_async(BatchWriter(PARTS))


async def logs_of(client_id: str) -> list[str]:
    rows = LogEntry.objects.filter(client__client_id=client_id).order_by("pk").values_list("message", flat=True)
    return [m async for m in rows]


async def log_writes(count: int) -> tuple[str, list[Write]]:
    client_id = f"bot-{uuid.uuid4()}"
    pk = await client_pk(client_id)
    return client_id, [LogWrite(context(client_id), pk, "info", f"line {i}", "") for i in range(count)]


async def test_a_full_buffer_makes_put_wait_until_a_flush_frees_room() -> None:
    gate = asyncio.Event()

    async def store_when_opened(batch: Sequence[Write]) -> FlushReport:
        await gate.wait()  # the database is slow: the first batch is held here
        return await STORE(batch)

    buffer = IngestBuffer(store_when_opened, batch_size=2, interval=0.001, limit=4)
    buffer.start()
    client_id, writes = await log_writes(6)
    for write in writes[:4]:
        await asyncio.wait_for(buffer.put(write), 1)  # room for four
    blocked = asyncio.ensure_future(buffer.put(writes[4]))
    await asyncio.sleep(0.1)
    assert not blocked.done() and buffer.pending == 4  # full: the stream's reader waits, nothing is dropped
    gate.set()
    await asyncio.wait_for(blocked, 5)
    await buffer.put(writes[5])
    await buffer.settle()
    assert await logs_of(client_id) == [f"line {i}" for i in range(6)]  # all of them, in order
    await buffer.close()


async def test_close_stores_everything_still_buffered_and_later_puts_too() -> None:
    buffer = IngestBuffer(STORE, batch_size=5_000, interval=3_600, limit=10_000)  # never flushes by itself
    buffer.start()
    client_id, writes = await log_writes(2_500)
    for write in writes[:-1]:
        await buffer.put(write)
    await asyncio.sleep(0.05)
    assert await logs_of(client_id) == []  # still buffered
    await buffer.close()
    assert len(await logs_of(client_id)) == 2_499
    await buffer.put(writes[-1])  # a straggler after close is stored at once
    assert (await logs_of(client_id))[-1] == "line 2499"


async def test_a_direct_write_behind_the_buffer_lands_after_the_buffered_messages(
        dispatch: Dispatcher, ingest: IngestBuffer, client_id: str) -> None:
    stopped = pb2.StatusUpdate(status=common_pb2.CLIENT_STATUS_PAUSED, details="by bot")
    assert await dispatch(context(client_id), pb2.ClientMessage(client_id=client_id, status=stopped)) is None
    await ingest.behind(client_disconnected)(client_id, "stream closed")
    client = await Client.objects.aget(client_id=client_id)
    assert client.status == "disconnected"
    history = [s async for s in StatusChange.objects.filter(client=client).order_by("pk").values_list("status",
                                                                                                      flat=True)]
    assert history == ["paused", "disconnected"]


def rejected_total(kind: str, cause: str) -> float:
    return REGISTRY.get_sample_value("crypto_client_messages_rejected_total", {"type": kind, "cause": cause}) or 0.0


async def test_refusals_found_at_flush_are_recorded_and_counted(dispatch: Dispatcher, ingest: IngestBuffer,
                                                                client_id: str) -> None:
    before = rejected_total("transaction", "invalid")

    def report(amount: str) -> pb2.ClientMessage:
        return pb2.ClientMessage(client_id=client_id, transaction=pb2.TransactionReport(
            transaction_id="t", type="deposit", symbol="BTC", amount=amount))

    assert await dispatch(context(client_id, message_id="first"), report("1")) is None
    assert await dispatch(context(client_id, message_id="second"), report("2")) is None  # same batch
    await ingest.settle()
    assert rejected_total("transaction", "invalid") == before + 1
    rows = RejectedMessage.objects.filter(client_id=client_id).values_list("message_id", "reason")
    assert [r async for r in rows] == [
        ("second", "transaction.transaction_id: 't' already recorded with another amount")]
    assert (await Transaction.objects.aget(client__client_id=client_id)).amount == 1


async def test_close_is_bounded_when_the_database_hangs_and_says_what_was_left(caplog) -> None:
    async def never_returns(batch: Sequence[Write]) -> FlushReport:
        await asyncio.Event().wait()  # the database hangs
        raise AssertionError("unreachable")

    buffer = IngestBuffer(never_returns, batch_size=2, interval=0.001, limit=10)
    buffer.start()
    _, writes = await log_writes(3)
    for write in writes:
        await buffer.put(write)
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(buffer.close(timeout=0.3), 5)
    assert asyncio.get_running_loop().time() - started < 2
    assert any("ingest.close_incomplete left=3" in r.getMessage() for r in caplog.records)


async def test_a_database_down_longer_than_retry_for_refuses_the_batch_as_storage_unavailable(caplog) -> None:
    """Held and retried while the outage lasts; past retry_for the messages are refused, with the reason."""
    from apps.crypto.grpc.services.ingest.plan import StorageUnavailable

    tries: list[int] = []

    async def down(writes: Sequence[Write]) -> FlushReport:
        tries.append(len(writes))
        raise StorageUnavailable("OperationalError: server closed the connection")

    buffer = IngestBuffer(down, batch_size=10, interval=0.01, limit=10, retry_for=0.5)
    buffer.start()
    writes = [LogWrite(context("c-down"), 1, "INFO", f"m{n}", "") for n in range(3)]
    for write in writes:
        await buffer.put(write)
    await asyncio.wait_for(buffer.settle(), 5)
    await buffer.close()
    assert len(tries) >= 3  # tried again with backoff before giving up
    assert buffer.pending == 0
    refused = [r.getMessage() for r in caplog.records if "message.rejected" in r.getMessage()]
    assert len(refused) == 3 and all("storage unavailable: OperationalError" in line for line in refused)


async def test_a_batch_the_database_left_midway_is_tried_again_from_there(caplog) -> None:
    """Write by write after a bad write, the database goes away: what was stored stays stored, the rest
    is tried again later (not refused), and the receipts and refusals of both tries are reported."""
    calls: list[list[str]] = []
    receipts: list[dict[str, list[str]]] = []

    async def midway(writes: Sequence[Write]) -> FlushReport:
        calls.append([w.message for w in writes])  # type: ignore[attr-defined]
        if len(calls) == 1:  # stored the first, refused the second, lost the database at the third
            return FlushReport(2, receipts={"c": ["m0"]}, unstored=list(writes[2:]),
                               unavailable="OperationalError: server closed the connection")
        return FlushReport(len(writes), receipts={"c": [w.message for w in writes]})  # type: ignore[attr-defined]

    buffer = IngestBuffer(midway, batch_size=10, interval=0.01, limit=10, on_receipts=receipts.append)
    buffer.start()
    for n in range(4):
        await buffer.put(LogWrite(context("c"), 1, "INFO", f"m{n}", ""))
    await asyncio.wait_for(buffer.settle(), 5)
    await buffer.close()
    assert calls == [["m0", "m1", "m2", "m3"], ["m2", "m3"]]
    assert receipts == [{"c": ["m0", "m2", "m3"]}]
    assert not [r for r in caplog.records if "message.rejected" in r.getMessage()]
    assert any("ingest.storage_unavailable writes=2" in r.getMessage() for r in caplog.records)
