"""A listing asks each replica for its clients: all of them, or only those a page names."""

from __future__ import annotations

import asyncio
import json

import fakeredis

from apps.crypto.grpc.services.bus import messages as m
from apps.crypto.grpc.services.bus.bus import RateWindow
from apps.crypto.grpc.services.bus.cluster_view import ask_replicas
from apps.crypto.grpc.services.streaming.session import StreamSession
from tests.bus.test_held import bus_on


async def answered(bus, wanted: list[str] | None) -> list[str]:
    body = json.dumps(wanted).encode() if wanted is not None else b""
    await bus.handle(m.encode(m.Envelope(m.EnvelopeKind.LIST, command_id="req", body=body)))
    [raw] = await bus.link.redis.lrange(bus.link.keys.listing("req"), 0, -1)
    await bus.link.redis.delete(bus.link.keys.listing("req"))
    return sorted(c["client_id"] for c in json.loads(raw)["clients"])


async def test_a_replica_answers_all_its_clients_or_only_the_named_ones():
    bus = bus_on(fakeredis.FakeServer(), "A")
    for client_id in ("c1", "c2", "c3"):
        await bus.attach(StreamSession(client_id, queue_limit=4))
    assert await answered(bus, None) == ["c1", "c2", "c3"]
    assert await answered(bus, ["c2", "elsewhere"]) == ["c2"]
    assert await answered(bus, []) == []


async def test_the_view_collects_one_answer_per_live_replica_and_skips_silent_ones():
    server = fakeredis.FakeServer()
    bus = bus_on(server, "A")
    await bus.attach(StreamSession("c1", queue_limit=4))
    reader = bus_on(server, "view").link
    async with bus.link.redis.pubsub() as sub:  # stands in for A's listener
        await sub.subscribe(bus.link.keys.channel("A"))
        await sub.get_message(timeout=0.1)

        async def serve_one() -> None:
            message = await sub.get_message(ignore_subscribe_messages=True, timeout=1)
            await bus.handle(message["data"])

        serving = asyncio.create_task(serve_one())
        answers = await ask_replicas(reader, ["A", "gone"], timeout=1.0, client_ids=["c1"])
        await serving
    assert [a["replica"] for a in answers] == ["A"]
    assert [c["client_id"] for c in answers[0]["clients"]] == ["c1"]


async def test_a_listing_reply_carries_the_replicas_streams_and_command_rate():
    bus = bus_on(fakeredis.FakeServer(), "A")
    for client_id in ("c1", "c2"):
        await bus.attach(StreamSession(client_id, queue_limit=4))
    bus.command_rate.add(3)
    await bus.handle(m.encode(m.Envelope(m.EnvelopeKind.LIST, command_id="req", body=b'["c1"]')))
    [raw] = await bus.link.redis.lrange(bus.link.keys.listing("req"), 0, -1)
    reply = json.loads(raw)
    assert [c["client_id"] for c in reply["clients"]] == ["c1"]  # the page's rows only ...
    assert reply["streams"] == 2 and reply["commands_total"] == 3  # ... but the whole replica's figures
    assert reply["commands_per_s"] > 0


def test_rate_window_counts_the_last_span_only():
    now = [1000.0]
    window = RateWindow(10, clock=lambda: now[0])
    window.add(5)
    now[0] += 2
    assert window.rate() == 5 / 2  # shorter than the span since start: averaged over what passed
    now[0] += 3
    window.add(5)
    assert window.rate() == 10 / 5
    now[0] += 7
    assert window.rate() == 5 / 10  # the span is full: the first 5 are older than it
    now[0] += 10
    assert window.rate() == 0.0 and window.total == 10  # all of it is older than the span
