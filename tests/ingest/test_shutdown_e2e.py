"""A replica that stops stores every client message it has accepted, even ones still in its buffer."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, LogEntry, StatusChange
from tests.service.test_streaming import connected_bot
from tests.support.grpc_server import running_server
from tests.support.rawbot import message
from tests.support.waiting import eventually

LINES = 300


async def test_messages_buffered_when_the_replica_stops_are_stored():
    # a flush only when the buffer holds 5,000 or an hour has passed: everything below stays buffered
    async with running_server(ingest_batch_size=5_000, ingest_flush_interval=3_600) as server:
        bot = await connected_bot(server)
        for i in range(LINES):
            bot.send(message(bot.client_id, log=pb2.LogEntry(level="info", message=f"line {i}")))
        ingest = server.replica.runtime.ingest
        await eventually(lambda: ingest.pending == LINES + 1, message="all read")  # + the first heartbeat
        assert not await LogEntry.objects.filter(client__client_id=bot.client_id).aexists()
    lines = LogEntry.objects.filter(client__client_id=bot.client_id).order_by("pk").values_list("message", flat=True)
    assert [line async for line in lines] == [f"line {i}" for i in range(LINES)]
    client = await Client.objects.aget(client_id=bot.client_id)
    assert client.last_seen is not None
    history = StatusChange.objects.filter(client=client).order_by("pk").values_list("status", flat=True)
    assert [s async for s in history] == ["active", "disconnected"]
    await bot.__aexit__()
