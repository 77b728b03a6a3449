"""BroadcastCommand when things go wrong mid-broadcast: a replica killed, a takeover, a caller that cancels.

Its own three replicas: one of them is killed here."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator

import pytest

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import CommandRecord
from tests.cluster.conftest import start_replicas, stop_replicas
from tests.cluster.test_broadcast import by_client, close_all, fleet, routable
from tests.cluster.test_routing import connect
from tests.support.cluster import OPERATOR_TOKEN, ReplicaProcess, replica_env
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, heartbeat
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def replicas(redis_server) -> Iterator[list[ReplicaProcess]]:
    group = start_replicas(replica_env(redis_server.url, os.environ["DATABASE_URL"]), 3, "bf" + uuid.uuid4().hex[:6])
    yield group
    stop_replicas(group)


@pytest.fixture
async def operator():
    op = Operator(OPERATOR_TOKEN)
    yield op
    await op.close()


def pause(command_id: str = "") -> pb2.DjangoCommand:
    return pb2.DjangoCommand(command_id=command_id, pause=pb2.PauseClientCommand(reason="fleet"))


async def test_a_takeover_during_a_broadcast_reports_the_client_once(replicas, operator):
    old = await connect(replicas[1], auto_ack=False)
    others = await fleet(replicas[:1], 2)
    new = None
    try:
        await routable(operator, replicas, others + [old])
        ids = [old.client_id] + [b.client_id for b in others]
        command_id = "tk-" + uuid.uuid4().hex[:8]
        call = asyncio.create_task(operator.broadcast(replicas[0].target, pb2.ClientSelector(client_ids=ids),
                                                      pause(command_id), timeout=6))
        await eventually(lambda: any(c.command_id.startswith(command_id) for c in old.commands), timeout=5)
        new = RawBot(replicas[2].target, old.client_id, old.api_key)  # the bot moves to another replica
        await new.__aenter__()
        new.send(heartbeat(old.client_id))
        started = time.monotonic()
        results, summary = await call
        got = by_client(results)
        assert set(got) == set(ids)
        assert not got[old.client_id].ack.success and "disconnected" in got[old.client_id].ack.error
        assert time.monotonic() - started < 4  # answered when the old stream ended, not at the deadline
        assert (summary.targeted, summary.acked, summary.failed) == (3, 2, 1)
    finally:
        await close_all(others + [old] + ([new] if new else []))


async def test_a_cancelled_broadcast_is_withdrawn_on_every_replica(replicas, operator):
    silent = await connect(replicas[1], auto_ack=False)
    try:
        await routable(operator, replicas, [silent])
        command_id = "cx-" + uuid.uuid4().hex[:8]
        call = asyncio.create_task(operator.broadcast(replicas[0].target,
                                                      pb2.ClientSelector(client_ids=[silent.client_id]),
                                                      pause(command_id), timeout=10))
        await eventually(lambda: any(c.command_id.startswith(command_id) for c in silent.commands), timeout=5)
        call.cancel()
        await asyncio.gather(call, return_exceptions=True)
        await eventually(lambda: f"broadcast.cancelled broadcast_id={command_id}" in replicas[1].log_tail(200),
                         timeout=5, message="the owner replica withdrew its part")

        async def recorded() -> bool:
            record = await CommandRecord.objects.filter(command_id=command_id).afirst()
            return record is not None and record.payload["counts"]["ending"] == "cancelled"
        await eventually(recorded, timeout=5, message="the cancelled broadcast left its record")
        record = await CommandRecord.objects.aget(command_id=command_id)
        assert record.kind == "broadcast" and record.outcome == "failed" and record.sent_by
    finally:
        await silent.__aexit__()


async def test_a_replica_killed_mid_broadcast_has_its_clients_failed_not_hanging(replicas, operator):
    victim = replicas[2]
    doomed = [await connect(victim, auto_ack=False) for _ in range(3)]
    healthy = await fleet(replicas[:2], 3)
    try:
        await routable(operator, replicas, healthy + doomed)
        ids = [b.client_id for b in healthy + doomed]
        command_id = "kill-" + uuid.uuid4().hex[:8]
        started = time.monotonic()
        call = asyncio.create_task(operator.broadcast(replicas[0].target, pb2.ClientSelector(all_connected=True),
                                                      pause(command_id), timeout=10))
        await eventually(lambda: all(any(c.command_id.startswith(command_id) for c in b.commands) for b in doomed),
                         timeout=5, message="the doomed bots got their copies")
        victim.kill()  # before any result batch (its bots do not ack): its targets come from Redis
        results, summary = await call
        elapsed = time.monotonic() - started
        got = by_client(results)
        assert set(ids) <= set(got)
        for bot in doomed:
            ack = got[bot.client_id].ack
            assert not ack.success and f"replica {victim.replica_id} went away" in ack.error, ack.error
        assert all(got[b.client_id].ack.success for b in healthy)
        assert elapsed < 5, elapsed  # failed when the replica was found gone, long before the 10 s deadline
        assert summary.failed >= 3 and summary.acked >= 6 and summary.targeted == len(results)
    finally:
        await close_all(healthy + doomed)


async def test_a_named_client_in_its_grace_window_gets_the_command_when_it_reconnects(replicas, operator):
    """Held by no replica when the broadcast comes (it dropped, grace 3 s): it gets its copy on reconnecting
    to another replica and acks; a named client that never returns is reported failed within the deadline."""
    back = await connect(replicas[1])
    gone = await connect(replicas[1])
    present = await connect(replicas[0])
    reborn = None
    try:
        await routable(operator, replicas, [back, gone, present])
        await back.__aexit__()
        await gone.__aexit__()
        await asyncio.sleep(0.3)  # both streams ended: each client is in its grace window now
        command_id = "gr-" + uuid.uuid4().hex[:8]
        ids = [back.client_id, gone.client_id, present.client_id]
        call = asyncio.create_task(operator.broadcast(replicas[0].target, pb2.ClientSelector(client_ids=ids),
                                                      pause(command_id), timeout=6))
        await asyncio.sleep(0.8)
        reborn = RawBot(replicas[0].target, back.client_id, back.api_key)  # (replicas[2] may be the killed one)
        await reborn.__aenter__()
        reborn.send(heartbeat(back.client_id))
        results, summary = await call
        got = by_client(results)
        assert set(got) == set(ids) and len(results) == 3
        assert got[back.client_id].ack.success, got[back.client_id].ack.error
        assert [c.command_id for c in reborn.commands] == [f"{command_id}:{back.client_id}"]
        assert got[present.client_id].ack.success
        assert not got[gone.client_id].ack.success and "did not reconnect within 3s" in got[gone.client_id].ack.error
        assert (summary.targeted, summary.acked, summary.failed) == (3, 2, 1)
    finally:
        await close_all([present] + ([reborn] if reborn else []))
