"""SQLite locks delay storage, never reject: another connection holds the database file with
BEGIN EXCLUSIVE while the real IngestBuffer and BatchWriter flush, and everything is stored once it
lets go. Skipped when the suite runs on another database (TEST_DATABASE_URL)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from apps.crypto.grpc.services.handlers.clients import client_pk
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import TransactionWrite
from apps.crypto.grpc.services.ingest.buffer import IngestBuffer
from apps.crypto.grpc.services.ingest.plan import StorageUnavailable, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter
from apps.crypto.models import RejectedMessage, Transaction

from .conftest import context

WRITES = 300
LOCKED_FOR = 1.5


@pytest.fixture
def sqlite_file() -> str:
    if connection.vendor != "sqlite":
        pytest.skip(f"SQLite lock test; the suite runs on {connection.vendor}")
    return str(connection.settings_dict["NAME"])


@sync_to_async
def reconnect_orm_thread() -> None:
    connection.close()  # this thread's connection (the ORM thread's); the next query connects afresh


@pytest.fixture
async def short_busy_timeout(sqlite_file: str) -> AsyncIterator[None]:
    """SQLite waits 0.1 s (not the service's 30 s) for a lock, so a held lock surfaces as
    "database is locked" within the test; the ORM thread reconnects with it, and back afterwards."""
    options = connection.settings_dict["OPTIONS"]
    before = options["timeout"]
    options["timeout"] = 0.1
    await reconnect_orm_thread()
    try:
        yield
    finally:
        options["timeout"] = before
        await reconnect_orm_thread()


@asynccontextmanager
async def exclusive_lock(path: str) -> AsyncIterator[None]:
    """Another connection holds the database with BEGIN EXCLUSIVE until the block ends."""
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        yield
        holder.execute("ROLLBACK")
    finally:
        holder.close()


async def transactions(count: int) -> tuple[str, list[Write]]:
    client_id = f"bot-{uuid.uuid4()}"
    pk = await client_pk(client_id)
    return client_id, [TransactionWrite(context(client_id), pk, f"lock-{n}", "deposit", "BTC", "1", "done", "")
                       for n in range(count)]


async def stored(client_id: str) -> int:
    return await Transaction.objects.filter(client__client_id=client_id).acount()


@pytest.fixture
def buffer() -> Iterator[IngestBuffer]:
    yield IngestBuffer(sync_to_async(BatchWriter(PARTS)), batch_size=100, interval=0.01, limit=1_000)


async def flush_through_a_lock(path: str, buffer: IngestBuffer, writes: list[Write]) -> float:
    """Put the writes while the lock is held, check they are held, not refused; returns when, after the
    release (monotonic), the buffer had stored them all."""
    buffer.start()
    async with exclusive_lock(path):
        for write in writes:
            await buffer.put(write)
        await asyncio.sleep(LOCKED_FOR)
        assert buffer.pending == len(writes)  # held while the lock is, none stored, none refused
        released = time.monotonic()
    await asyncio.wait_for(buffer.settle(), 15)
    settled = time.monotonic() - released
    await buffer.close()
    return settled


async def test_a_lock_shorter_than_the_busy_timeout_only_delays_the_flush(sqlite_file, buffer, caplog) -> None:
    client_id, writes = await transactions(WRITES)
    settled = await flush_through_a_lock(sqlite_file, buffer, writes)
    assert await stored(client_id) == WRITES
    assert not await RejectedMessage.objects.filter(client_id=client_id).aexists()
    assert not [r for r in caplog.records if "message.rejected" in r.getMessage()]
    assert settled < 5


async def test_database_is_locked_is_retried_and_nothing_is_refused(sqlite_file, short_busy_timeout, buffer,
                                                                    caplog) -> None:
    caplog.set_level(logging.WARNING, "apps.crypto.grpc.services.ingest")
    client_id, writes = await transactions(WRITES)
    settled = await flush_through_a_lock(sqlite_file, buffer, writes)
    retries = [r.getMessage() for r in caplog.records if "ingest.storage_unavailable" in r.getMessage()]
    assert retries and all("database is locked" in line for line in retries), retries
    assert await stored(client_id) == WRITES
    assert not await RejectedMessage.objects.filter(client_id=client_id).aexists()
    assert not [r for r in caplog.records if "message.rejected" in r.getMessage() or "batch_failed" in r.getMessage()]
    assert settled < 5  # the retry backoff is at most 2 s


async def test_the_writer_hands_a_locked_batch_back_unstored(sqlite_file, short_busy_timeout) -> None:
    client_id, writes = await transactions(3)
    async with exclusive_lock(sqlite_file):
        with pytest.raises(StorageUnavailable, match="OperationalError: database is locked"):
            await sync_to_async(BatchWriter(PARTS))(writes)
    assert await stored(client_id) == 0
    assert not await RejectedMessage.objects.filter(client_id=client_id).aexists()
