"""A PostgreSQL blip delays storage, never rejects: a real replica keeps every message while its
database connections are terminated again and again, and stores again within seconds of the end.

One replica process on a fresh PostgreSQL database; a bot sends TRANSACTIONS transaction reports at
a steady pace while a thread runs pg_terminate_backend on every other connection to that database
every 50 ms for STORM seconds. Skipped where no PostgreSQL answers (tests/support/postgres.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator

import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.postgres import postgres_database
from tests.support.rawbot import RawBot, message
from tests.support.redis_server import RedisServer
from tests.support.waiting import eventually

from .conftest import start_replicas, stop_replicas

TRANSACTIONS = 600
SEND_FOR = 4.0  # seconds the bot takes to send them all
STORM_AFTER, STORM = 0.5, 2.0  # the terminations start this long into the sending, and last this long
TERMINATE_EVERY = 0.05
RESUMED_WITHIN = 5.0  # storing must start again this soon after the last termination


@pytest.fixture(scope="module")
def pg_replica(redis_server: RedisServer) -> Iterator[tuple[ReplicaProcess, str]]:
    """One replica on a fresh PostgreSQL database, and the database's URL."""
    with postgres_database() as url:
        tag = "blip" + uuid.uuid4().hex[:6]
        (replica,) = start_replicas(replica_env(redis_server.url, url, CRYPTO_REDIS_KEY_PREFIX=tag,
                                                CRYPTO_AUTH="off"), 1, tag)
        yield replica, url
        stop_replicas([replica])


def query(url: str, sql: str, *args: object) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True, connect_timeout=2) as conn:
        return conn.execute(sql, args).fetchone()[0]


def count_rows(url: str, table: str) -> int:
    return query(url, f"SELECT count(*) FROM {table}")


class Terminator(threading.Thread):
    """Terminates every other connection to the database (but the sampler's) every TERMINATE_EVERY s for STORM s."""

    def __init__(self, url: str, spare: int) -> None:
        super().__init__(name="pg-terminator", daemon=True)
        self.url, self.spare, self.terminated, self.ended_at = url, spare, 0, 0.0

    def run(self) -> None:
        import psycopg

        name = self.url.rsplit("/", 1)[1]
        with psycopg.connect(self.url, autocommit=True) as conn:
            until = time.monotonic() + STORM
            while time.monotonic() < until:
                rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                                    "AND pid <> pg_backend_pid() AND pid <> %s", (name, self.spare)).fetchall()
                self.terminated += sum(1 for (ok,) in rows if ok)
                time.sleep(TERMINATE_EVERY)
        self.ended_at = time.monotonic()


class Sampler(threading.Thread):
    """(monotonic time, rows in crypto_transaction) every 20 ms on its own connection, until stopped."""

    def __init__(self, url: str) -> None:
        import psycopg

        super().__init__(name="pg-sampler", daemon=True)
        self.conn = psycopg.connect(url, autocommit=True)
        self.pid = self.conn.info.backend_pid
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        with self.conn:
            while not self.stop.wait(0.02):
                self.samples.append((time.monotonic(), self.conn.execute(
                    "SELECT count(*) FROM crypto_transaction").fetchone()[0]))

    def resumed_after(self, moment: float) -> float:
        """Seconds from `moment` until the row count first grew past what it was then."""
        before = max((n for t, n in self.samples if t <= moment), default=0)
        return next((t for t, n in self.samples if t > moment and n > before), float("inf")) - moment

    def longest_stall(self) -> float:
        """The longest time the row count stood still before all rows were there."""
        growths = [t for (t, n), (_, m) in zip(self.samples[1:], self.samples) if n != m]
        return max((b - a for a, b in zip(growths, growths[1:])), default=0.0)


def test_postgresql_settings_open_no_connection_pool() -> None:
    """django-cfg would add a psycopg pool (min 10, max 50, 30 s checkout); the replica's one ORM thread
    keeps one connection and reconnects after a failure, which a pool of dead spares only delays."""
    from config.settings import CryptoConfig, database_config

    for url in ("postgresql://u:p@db.example:5432/crypto", "postgres://u@db.example/crypto"):
        settings = CryptoConfig(databases={"default": database_config(url)}).get_all_settings()
        assert settings["DATABASES"]["default"]["OPTIONS"]["pool"] is False
        assert settings["DATABASES"]["default"]["CONN_MAX_AGE"] == 0


def transaction(client_id: str, i: int) -> pb2.ClientMessage:
    return message(client_id, transaction=pb2.TransactionReport(
        transaction_id=f"tx-{i:04d}", type="deposit", symbol="BTC", amount="1.5", status="done"))


async def test_terminated_connections_delay_storage_and_reject_nothing(pg_replica):
    replica, url = pg_replica
    client_id = f"blip-{uuid.uuid4().hex[:10]}"
    async with RawBot(replica.target, client_id) as bot:
        bot.send(message(client_id, register=pb2.ClientRegistration(client_name="blip", client_type="bot",
                                                                     version="1.0")))
        await eventually(lambda: asyncio.to_thread(query, url, "SELECT count(*) FROM crypto_client WHERE "
                                                   "client_id = %s", client_id), message="client registered")
        sampler = Sampler(url)
        terminator = Terminator(url, spare=sampler.pid)
        sampler.start()
        started = time.monotonic()
        try:
            for i in range(TRANSACTIONS):
                if not terminator.is_alive() and not terminator.ended_at and time.monotonic() - started >= STORM_AFTER:
                    terminator.start()
                bot.send(transaction(client_id, i))
                await asyncio.sleep(max(0.0, started + SEND_FOR * (i + 1) / TRANSACTIONS - time.monotonic()))
            await eventually(lambda: sampler.samples and sampler.samples[-1][1] == TRANSACTIONS, timeout=60,
                             message=f"{TRANSACTIONS} transactions stored")
        finally:
            sampler.stop.set()
            if terminator.ident is not None:
                await asyncio.to_thread(terminator.join)
            await asyncio.to_thread(sampler.join)
    resumed_after, stall = sampler.resumed_after(terminator.ended_at), sampler.longest_stall()
    log = replica.log_path.read_text(errors="replace")
    print(f"\nterminated={terminator.terminated} resumed_after={resumed_after:.2f}s longest_stall={stall:.2f}s "
          f"all_stored_after={sampler.samples[-1][0] - terminator.ended_at:.2f}s "
          f"retries={log.count('ingest.storage_unavailable')}")
    assert terminator.terminated > 0
    assert "ingest.storage_unavailable" in log, "the terminations never reached the writer: the test proves nothing"
    assert count_rows(url, "crypto_rejectedmessage") == 0
    assert "ingest.storage_gave_up" not in log and "message.rejected" not in log
    assert resumed_after < RESUMED_WITHIN, f"storing resumed only {resumed_after:.1f}s after the terminations"
