"""Which database errors hold a batch for a retry (the database's) and which refuse a message (its own)."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Sequence
from types import SimpleNamespace

import psycopg
import psycopg_pool
import pytest
from asgiref.sync import sync_to_async
from django.db.utils import DatabaseErrorWrapper

from apps.crypto.grpc.services.handlers.clients import KNOWN_CLIENTS, client_pk
from apps.crypto.grpc.services.handlers.table import PARTS
from apps.crypto.grpc.services.handlers.transaction import TransactionWrite
from apps.crypto.grpc.services.ingest.buffer import IngestBuffer
from apps.crypto.grpc.services.ingest.plan import FlushReport, Write
from apps.crypto.grpc.services.ingest.writer import BatchWriter, is_transient
from apps.crypto.models import Client, RejectedMessage, Transaction

from .conftest import context


def as_django_raises(error: Exception, driver: object = psycopg) -> Exception:
    """`error` as Django's backend raises it: one of django.db's classes, the driver's error as cause."""
    try:
        with DatabaseErrorWrapper(SimpleNamespace(Database=driver, errors_occurred=False)):
            raise error
    except Exception as wrapped:
        assert wrapped.__cause__ is error
        return wrapped
    raise AssertionError("not raised")


@pytest.mark.parametrize("error", [
    psycopg.errors.AdminShutdown("terminating connection due to administrator command"),  # restart, terminate
    psycopg.errors.CannotConnectNow("the database system is starting up"),
    psycopg.OperationalError("server closed the connection unexpectedly"),
    psycopg.OperationalError("connection failed: Connection refused"),
    psycopg.errors.LockNotAvailable("canceling statement due to lock timeout"),
    psycopg.errors.QueryCanceled("canceling statement due to statement timeout"),
    psycopg.errors.DeadlockDetected("deadlock detected"),
    psycopg.errors.SerializationFailure("could not serialize access"),
    psycopg.errors.TooManyConnections("sorry, too many clients already"),
    psycopg.errors.ReadOnlySqlTransaction("cannot execute INSERT in a read-only transaction"),  # failover
    psycopg.InterfaceError("the connection is closed"),
    psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec"),
    psycopg_pool.PoolClosed("the pool 'pool-1' is already closed"),
    psycopg_pool.TooManyRequests("the pool 'pool-1' has already 10 requests waiting"),
], ids=lambda e: type(e).__name__)
def test_the_database_being_unavailable_is_transient(error: Exception) -> None:
    wrapped = as_django_raises(error)
    assert type(wrapped).__module__ == "django.db.utils"
    assert is_transient(wrapped)
    assert is_transient(error)  # also when a driver's error reaches the writer unwrapped


def test_sqlite_database_is_locked_is_transient() -> None:
    error = sqlite3.OperationalError("database is locked")
    assert is_transient(as_django_raises(error, sqlite3)) and is_transient(error)


@pytest.mark.parametrize("error", [
    psycopg.errors.ForeignKeyViolation("insert or update violates foreign key constraint"),  # client deleted
    psycopg.errors.UniqueViolation("duplicate key value violates unique constraint"),
    psycopg.errors.NumericValueOutOfRange("numeric field overflow"),
    psycopg.errors.StringDataRightTruncation("value too long for type character varying(128)"),
    psycopg.errors.ProgramLimitExceeded("index row size 3000 exceeds btree version 4 maximum 2704"),
    psycopg.errors.UndefinedColumn("column does not exist"),
    sqlite3.IntegrityError("FOREIGN KEY constraint failed"),
], ids=lambda e: type(e).__name__)
def test_a_write_the_database_refuses_is_not_transient(error: Exception) -> None:
    driver = sqlite3 if isinstance(error, sqlite3.Error) else psycopg
    assert not is_transient(as_django_raises(error, driver))
    assert not is_transient(error)


def test_a_bug_is_not_transient() -> None:
    assert not is_transient(ValueError("bad amount")) and not is_transient(KeyError("kind"))


async def test_a_write_for_a_deleted_client_is_refused_at_once_not_retried() -> None:
    """A genuinely invalid write (its client row deleted: a foreign key fails) is refused on the first
    flush; the batch is not held for retry_for, and the other client's writes are stored."""
    gone, kept = f"bot-{uuid.uuid4()}", f"bot-{uuid.uuid4()}"
    gone_pk, kept_pk = await client_pk(gone), await client_pk(kept)
    await Client.objects.filter(pk=gone_pk).adelete()
    calls = 0
    store = sync_to_async(BatchWriter(PARTS))

    async def counting(writes: Sequence[Write]) -> FlushReport:
        nonlocal calls
        calls += 1
        return await store(writes)

    buffer = IngestBuffer(counting, batch_size=100, interval=0.01, limit=1_000)  # retry_for: the 60 s default
    buffer.start()
    for n in range(5):
        for client_id, pk in ((gone, gone_pk), (kept, kept_pk)):
            await buffer.put(TransactionWrite(context(client_id), pk, f"t{n}", "deposit", "BTC", "1", "done", ""))
    await asyncio.wait_for(buffer.settle(), 5)
    await buffer.close()
    assert calls == 1
    reasons = RejectedMessage.objects.filter(client_id=gone).values_list("reason", flat=True)
    assert [r async for r in reasons] == ["storage error: IntegrityError"] * 5
    assert await Transaction.objects.filter(client_id=kept_pk).acount() == 5
    assert not await RejectedMessage.objects.filter(client_id=kept).aexists()
    KNOWN_CLIENTS.forget(gone)
