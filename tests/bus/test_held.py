"""Acks end commands reliably: held commands acked wherever the client reconnects, acks forwarded mid-drain."""

from __future__ import annotations

import asyncio

import fakeredis

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.bus.bus import CommandBus
from apps.crypto.grpc.services.bus.keys import Keys
from apps.crypto.grpc.services.bus.link import RedisLink
from apps.crypto.grpc.services.bus.runner import BusRunner
from apps.crypto.grpc.services.streaming.session import StreamSession


def bus_on(server: fakeredis.FakeServer, replica: str) -> CommandBus:
    link = RedisLink(fakeredis.FakeAsyncRedis(server=server), Keys("t"), replica, owner_ttl=10, grace=5)
    return CommandBus(link, grace=5, confirm_timeout=1)


async def test_held_command_acked_on_the_callers_own_replica_answers_at_once():
    bus = bus_on(fakeredis.FakeServer(), "A")
    old = StreamSession("c1", queue_limit=4)
    await bus.attach(old)
    await bus.detach(old)  # the client dropped: inside its grace window now
    command = pb2.DjangoCommand(command_id="cmd1", ping=pb2.PingCommand(sequence=1))
    started = asyncio.get_running_loop().time()
    execute = asyncio.create_task(bus.execute("c1", command, timeout=3))
    await asyncio.sleep(0.05)  # the command is held in Redis
    session = StreamSession("c1", queue_limit=4)
    await bus.attach(session)  # reconnects to the caller's own replica, which takes the held command
    [delivered] = session.pending()
    assert await bus.on_ack("c1", common_pb2.CommandAck(command_id=delivered.command_id, success=True))
    answer = await asyncio.wait_for(execute, 2)
    assert answer.ack.success and answer.delivery.delivered and answer.delivery.routed_to == "A"
    assert asyncio.get_running_loop().time() - started < 1.0  # the ack ended it, not a timeout


async def test_an_ack_still_reaches_the_caller_when_its_stream_is_cancelled_meanwhile():
    """A draining stream may be cancelled while it forwards an ack; the ack must not vanish."""
    server = fakeredis.FakeServer()
    caller, owner = bus_on(server, "A"), bus_on(server, "B")
    runners = [BusRunner(bus, bus.link.redis, 5, 15, lambda ok: None) for bus in (caller, owner)]
    for runner in runners:
        await runner.start()
    try:
        session = StreamSession("c1", queue_limit=4)
        await owner.attach(session)
        command = pb2.DjangoCommand(command_id="cmd1", ping=pb2.PingCommand(sequence=1))
        execute = asyncio.create_task(caller.execute("c1", command, timeout=3))
        while not session.pending():
            await asyncio.sleep(0.01)
        forward = asyncio.create_task(owner.on_ack("c1", common_pb2.CommandAck(command_id="cmd1", success=True)))
        await asyncio.sleep(0)  # the forward has started: the ack left the in-flight table
        forward.cancel()  # the stream ends (drain) right then
        answer = await asyncio.wait_for(execute, 2)
        assert answer.ack.success and answer.delivery.routed_to == "B"
    finally:
        for runner in runners:
            await runner.close()


async def test_a_command_published_twice_is_delivered_once():
    """A publish retried after its reply was lost (a Redis failover) reaches the owner twice."""
    from apps.crypto.grpc.services.bus import messages as m

    owner = bus_on(fakeredis.FakeServer(), "B")
    session = StreamSession("c1", queue_limit=4)
    await owner.attach(session)
    command = pb2.DjangoCommand(command_id="cmd1", ping=pb2.PingCommand(sequence=1))
    raw = m.encode(m.Envelope(m.EnvelopeKind.COMMAND, client_id="c1", command_id="cmd1", reply_to="A",
                              body=command.SerializeToString()))
    for _ in range(2):
        follow_up = owner.handle(raw)
        if follow_up is not None:
            await follow_up
    assert [c.command_id for c in session.pending()] == ["cmd1"]
