"""Receipting bots at thousands of messages/s lose nothing to a SIGTERM drain or a kill -9 of their replica.

Real replica processes on a real redis-server, on the suite's database and on PostgreSQL where one
answers. Each bot (tests/support/durable_bot.py, written from the protos alone) starts on the victim,
moves to the survivor when its stream ends, and resends what no receipt confirmed. Afterwards every
message it sent is stored exactly once: LogEntry has no natural key, so a duplicate would show.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from asgiref.sync import sync_to_async
from django.db import connections

from tests.cluster.conftest import LOG_DIR
from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.durable_bot import DurableBot
from tests.support.postgres import postgres_database
from tests.support.redis_server import RedisServer

BOTS, RATE, SECONDS = 4, 900, 4.0  # 3,600 messages/s in all, 14,400 messages
HIT_AFTER = 1.5  # seconds of traffic before the victim is stopped


@contextmanager
def database(kind: str) -> Iterator[str]:
    import os

    if kind == "postgres":
        with postgres_database() as url:
            yield url
    else:
        yield os.environ["DATABASE_URL"]


@contextmanager
def two_replicas(database_url: str) -> Iterator[tuple[ReplicaProcess, ReplicaProcess]]:
    redis = RedisServer().start()
    tag = "dur" + uuid.uuid4().hex[:6]
    env = replica_env(redis.url, database_url, CRYPTO_AUTH="off", CRYPTO_REDIS_KEY_PREFIX=tag)
    replicas = [ReplicaProcess(f"{tag}-r{i}", env, LOG_DIR / f"{tag}-r{i}.log").start() for i in range(2)]
    try:
        for replica in replicas:
            replica.wait_ready()
        yield replicas[0], replicas[1]
    finally:
        for replica in replicas:
            if replica.process is not None and replica.process.poll() is None:
                replica.kill()
        redis.stop()


def stored_counts(database_url: str, client_ids: list[str]) -> dict[str, tuple[int, int, int]]:
    """client_id -> (transactions, log lines, rejections), read with a connection of our own."""
    import psycopg

    if database_url.startswith("postgres"):
        conn = psycopg.connect(database_url)
        q = "%s"
    else:
        import sqlite3
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        q = "?"
    out = {}
    try:
        for client_id in client_ids:
            def one(sql: str) -> int:
                cursor = conn.cursor()
                cursor.execute(sql.replace("?", q), (client_id,))
                return cursor.fetchone()[0]
            out[client_id] = (
                one("SELECT count(*) FROM crypto_transaction t JOIN crypto_client c ON t.client_id = c.id "
                    "WHERE c.client_id = ?"),
                one("SELECT count(*) FROM crypto_logentry l JOIN crypto_client c ON l.client_id = c.id "
                    "WHERE c.client_id = ?"),
                one("SELECT count(*) FROM crypto_rejectedmessage WHERE client_id = ?"))
    finally:
        conn.close()
    return out


async def run_fleet(victim: ReplicaProcess, survivor: ReplicaProcess, hit) -> list[DurableBot]:
    bots = [DurableBot([victim.target, survivor.target], f"durable-{uuid.uuid4().hex[:8]}", RATE,
                       int(RATE * SECONDS)) for _ in range(BOTS)]
    deadline = time.monotonic() + 60
    running = [asyncio.create_task(bot.run(deadline)) for bot in bots]
    await asyncio.sleep(HIT_AFTER)
    in_flight = sum(len(bot.outbox) for bot in bots)
    await asyncio.to_thread(hit)
    await asyncio.gather(*running)
    print(f"unreceipted when hit: {in_flight}; resent: {[b.resent for b in bots]}; streams: "
          f"{[b.streams for b in bots]}; endings: {[b.endings for b in bots]}")
    return bots


def check_exactly_once(bots: list[DurableBot], database_url: str) -> None:
    for bot in bots:
        assert bot.made == bot.total and not bot.outbox, (bot.client_id, bot.made, len(bot.outbox), bot.endings)
        assert bot.streams >= 2, "the victim's stream never ended: nothing was tested"
    counts = stored_counts(database_url, [b.client_id for b in bots])
    assert counts == {b.client_id: (b.transactions, b.logs, 0) for b in bots}


@pytest.mark.parametrize("db", ["suite", "postgres"])
async def test_sigterm_drain_under_load_stores_every_message_exactly_once(db: str):
    with database(db) as url, two_replicas(url) as (victim, survivor):
        codes: list[int] = []

        def drain() -> None:
            victim.terminate()
            codes.append(victim.wait_exit(20))

        bots = await run_fleet(victim, survivor, drain)
        assert codes == [0], victim.log_tail()
        assert "drain.start" in victim.log_tail(400)
        await sync_to_async(connections.close_all)()
        check_exactly_once(bots, url)


@pytest.mark.parametrize("db", ["suite", "postgres"])
async def test_kill_9_under_load_stores_every_message_exactly_once(db: str):
    with database(db) as url, two_replicas(url) as (victim, survivor):
        bots = await run_fleet(victim, survivor, victim.kill)
        resent = sum(b.resent for b in bots)
        assert resent > 0, "a kill -9 under load always leaves something unreceipted"
        check_exactly_once(bots, url)
