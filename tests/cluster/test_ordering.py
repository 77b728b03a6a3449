"""Ordering across replicas (#14 item 5), with real replica processes: a bot's state ends as its latest
report in its own order (ClientMessage.timestamp), not as whatever the replica that flushed last held.

Replica A stores lazily (a long flush interval, a large batch), replica B at once. The bot reports
balance 100, transaction `pending` and status error through A; its connection to A goes quiet (A never
sees it close, so nothing makes A flush early) and it reconnects to B, which takes the client over,
and reports 90, `confirmed` and paused with later timestamps. B stores those first; A stores its older
reports later. Before ordering, A's flush put 100 / pending / error back.
"""

from __future__ import annotations

import asyncio
import os
import urllib.request
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, StatusChange, Transaction, Wallet
from tests.cluster.conftest import LOG_DIR, stop_replicas
from tests.support.cluster import ReplicaProcess, replica_env
from tests.support.postgres import postgres_database
from tests.support.rawbot import RawBot, message
from tests.support.waiting import eventually

A_FLUSH_INTERVAL = 8.0  # A's reports wait this long in its buffer: B stores first, with a wide margin (3 s was not, on a loaded 2-core machine)


def _start(url: str, redis_url: str) -> list[ReplicaProcess]:
    tag = "ord" + uuid.uuid4().hex[:6]
    common = {"CRYPTO_REDIS_KEY_PREFIX": tag, "CRYPTO_AUTH": "off"}
    lagging = replica_env(redis_url, url, CRYPTO_INGEST_FLUSH_INTERVAL=str(A_FLUSH_INTERVAL),
                          CRYPTO_INGEST_BATCH_SIZE="10000", **common)
    replicas = [ReplicaProcess(f"{tag}-a", lagging, LOG_DIR / f"{tag}-a.log"),
                ReplicaProcess(f"{tag}-b", replica_env(redis_url, url, **common), LOG_DIR / f"{tag}-b.log")]
    for replica in replicas:
        replica.start()
    with ThreadPoolExecutor(len(replicas)) as pool:
        list(pool.map(lambda r: r.wait_ready(), replicas))
    return replicas


@pytest.fixture(params=["suite", "postgres"])
def replicas(request, redis_server) -> Iterator[tuple[str, list[ReplicaProcess]]]:
    """(database URL, [A lagging, B normal]) on the suite's database, then on a fresh PostgreSQL one."""
    if request.param == "suite":
        url = os.environ["DATABASE_URL"]
        started = _start(url, redis_server.url)
        yield url, started
        stop_replicas(started)
    else:
        with postgres_database() as url:
            started = _start(url, redis_server.url)
            yield url, started
            stop_replicas(started)
            _forget(url)


def _using(url: str):
    """The ORM on the replicas' database: the suite's own, or the fresh PostgreSQL one under another alias."""
    if url == os.environ["DATABASE_URL"]:
        return "default"
    from urllib.parse import urlsplit

    from django.db import connections

    parts = urlsplit(url)
    alias = f"ordering-{parts.path.lstrip('/')}"
    connections.settings[alias] = {
        **connections.settings["default"], "ENGINE": "django.db.backends.postgresql", "OPTIONS": {},
        "NAME": parts.path.lstrip("/"), "USER": parts.username or "", "PASSWORD": parts.password or "",
        "HOST": parts.hostname or "", "PORT": str(parts.port or "")}
    return alias


def _forget(url: str) -> None:
    """Drop the alias _using() added: a dropped database must not stay among the ORM's connections
    (the next test's request would try to reach it)."""
    from django.db import connections

    alias = f"ordering-{url.rsplit('/', 1)[1]}"
    if alias in connections.settings:
        connections[alias].close()
        del connections.settings[alias]
        if hasattr(connections._connections, alias):
            delattr(connections._connections, alias)


def _count(target_metrics: str, kind: str) -> float:
    with urllib.request.urlopen(target_metrics, timeout=2) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f'crypto_client_messages_total{{type="{kind}"}}'):
                return float(line.rsplit(" ", 1)[1])
    return 0.0


def _stamped(client_id: str, at: datetime, **payload: object) -> pb2.ClientMessage:
    msg = message(client_id, **payload)
    msg.timestamp.FromDatetime(at)
    return msg


def _reports(client_id: str, at: datetime, balance: str, tx_status: str, status: int, details: str
             ) -> list[pb2.ClientMessage]:
    return [
        _stamped(client_id, at, wallet_update=pb2.WalletUpdate(wallet_id="main", symbol="BTC",
                                                               balance_available=balance, balance_locked="0")),
        _stamped(client_id, at + timedelta(milliseconds=1), transaction=pb2.TransactionReport(
            transaction_id="tx-1", type="deposit", symbol="BTC", amount="10", status=tx_status)),
        _stamped(client_id, at + timedelta(milliseconds=2), status=pb2.StatusUpdate(status=status, details=details)),
        _stamped(client_id, at + timedelta(milliseconds=3), heartbeat=pb2.HeartbeatUpdate()),
    ]


async def test_a_lagging_replica_does_not_put_back_an_older_report(replicas):
    url, (lagging, normal) = replicas
    db = _using(url)
    client_id = f"bot-{uuid.uuid4().hex[:10]}"
    sent = datetime.now(UTC)

    a = RawBot(lagging.target, client_id)
    await a.__aenter__()
    for msg in _reports(client_id, sent, "100", "pending", common_pb2.CLIENT_STATUS_ERROR, "older, via A"):
        a.send(msg)
    metrics_a = f"http://127.0.0.1:{lagging.metrics_port}/metrics"
    # the heartbeat comes last on the stream: once A counts it, A holds the three reports in its buffer
    await eventually(lambda: asyncio.to_thread(_count, metrics_a, "heartbeat"), timeout=5,
                     message="A received the reports")

    b = RawBot(normal.target, client_id)  # the bot moves; its stream to A is taken over, never closed by it
    await b.__aenter__()
    try:
        for msg in _reports(client_id, sent + timedelta(seconds=1), "90", "confirmed",
                            common_pb2.CLIENT_STATUS_PAUSED, "newer, via B"):
            b.send(msg)

        def wallet() -> Decimal | None:
            return (Wallet.objects.using(db).filter(client__client_id=client_id)
                    .values_list("balance_available", flat=True).first())

        async def stored_by(details: str) -> bool:
            return await StatusChange.objects.using(db).filter(client__client_id=client_id,
                                                               details=details).aexists()

        await eventually(lambda: asyncio.to_thread(wallet), timeout=5, message="B stored its reports")
        assert await asyncio.to_thread(wallet) == Decimal(90)
        assert not await stored_by("older, via A"), "A was meant to store after B: the scenario did not happen"

        await eventually(lambda: stored_by("older, via A"), timeout=A_FLUSH_INTERVAL + 5,
                         message="A stored its (older) reports")
        assert await asyncio.to_thread(wallet) == Decimal(90)
        tx = await Transaction.objects.using(db).aget(client__client_id=client_id, transaction_id="tx-1")
        assert (tx.status, tx.amount) == ("confirmed", Decimal(10))
        client = await Client.objects.using(db).aget(client_id=client_id)
        assert client.status == "paused"
        assert client.status_reported_at == sent + timedelta(seconds=1, milliseconds=2)
    finally:
        await b.__aexit__()
        await a.__aexit__()
