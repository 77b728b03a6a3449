"""Attaching a stream: a failed claim leaves nothing behind, a racing command is not lost."""

from __future__ import annotations

import asyncio

import fakeredis
import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.bus.bus import CommandBus
from apps.crypto.grpc.services.bus.connect import build_redis
from apps.crypto.grpc.services.bus.keys import Keys
from apps.crypto.grpc.services.bus.link import BusUnavailable, RedisLink
from apps.crypto.grpc.services.streaming.session import StreamSession
from tests.support.ports import free_port


async def test_failed_claim_leaves_no_session():
    redis = build_redis(f"redis://127.0.0.1:{free_port()}/0", 0.5)  # nothing listens there
    bus = CommandBus(RedisLink(redis, Keys("t"), "A", owner_ttl=10, grace=5), grace=5, confirm_timeout=1)
    session = StreamSession("c1", queue_limit=4)
    with pytest.raises(BusUnavailable):
        await bus.attach(session)
    assert "c1" not in bus.sessions
    await redis.aclose()


async def test_command_racing_an_attach_is_delivered_locally_and_keeps_the_claim():
    """The claim of a stream attaching on this replica is not mistaken for a stale one."""
    link = RedisLink(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), Keys("t"), "A", owner_ttl=10, grace=5)
    bus = CommandBus(link, grace=5, confirm_timeout=1)
    await link.claim("c1")  # the attach's claim landed; its session is not local yet
    session = StreamSession("c1", queue_limit=4)
    command = pb2.DjangoCommand(command_id="cmd1", ping=pb2.PingCommand(sequence=1))
    delivery, _ = await asyncio.gather(bus.send("c1", command, timeout=2), bus.attach(session))
    assert delivery.delivered and delivery.routed_to == "A"
    assert [c.command_id for c in session.pending()] == ["cmd1"]
    assert (await link.owner("c1")).replica_id == "A"


def test_an_envelope_of_unknown_kind_is_logged_and_ignored(caplog):
    link = RedisLink(fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer()), Keys("t"), "A", owner_ttl=10, grace=5)
    bus = CommandBus(link, grace=5, confirm_timeout=1)
    with caplog.at_level("WARNING"):
        assert bus.handle(b'{"kind": "from-the-future", "client_id": "c1"}') is None
    assert any(r.getMessage().startswith("bus.bad_envelope") and "unknown kind" in r.getMessage()
               for r in caplog.records)
