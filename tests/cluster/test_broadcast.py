"""BroadcastCommand over three real replicas: one call, every targeted bot's own ack back, exactly once."""

from __future__ import annotations

import asyncio
import io
import time
import uuid

import grpc
import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, CommandRecord
from bench.cluster import RoundTrips
from tests.cluster.test_routing import connect, wait_routable
from tests.support.cluster import OPERATOR_TOKEN
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, message
from tests.support.waiting import eventually


@pytest.fixture
async def operator():
    op = Operator(OPERATOR_TOKEN)
    yield op
    await op.close()


async def fleet(replicas, per_replica: int, **kwargs) -> list[RawBot]:
    bots = list(await asyncio.gather(*(connect(replica, **kwargs) for replica in replicas for _ in range(per_replica))))
    return bots


async def close_all(bots: list[RawBot]) -> None:
    await asyncio.gather(*(bot.__aexit__() for bot in bots))


async def routable(operator: Operator, cluster, bots: list[RawBot]) -> None:
    await asyncio.gather(*(wait_routable(operator, cluster[0].target, bot.client_id) for bot in bots))


def by_client(results: list[pb2.BroadcastClientResult]) -> dict[str, pb2.BroadcastClientResult]:
    ids = [r.client_id for r in results]
    assert len(ids) == len(set(ids)), "a client got more than one result"
    return {r.client_id: r for r in results}


async def test_every_client_of_three_replicas_acks_exactly_once(cluster, operator):
    bots = await fleet(cluster, 10)
    try:
        await routable(operator, cluster, bots)
        ids = [bot.client_id for bot in bots]
        command = pb2.DjangoCommand(command_id=f"fleet-{uuid.uuid4().hex[:8]}", pause=pb2.PauseClientCommand(reason="x"))
        results, summary = await operator.broadcast(cluster[1].target, pb2.ClientSelector(client_ids=ids), command)
        got = by_client(results)
        assert set(got) == set(ids)
        assert all(r.ack.success and r.ack.message == "done" for r in results), [r.ack.error for r in results]
        assert all(r.ack.command_id == f"{command.command_id}:{r.client_id}" for r in results)
        assert (summary.broadcast_id, summary.targeted, summary.acked, summary.failed) == (command.command_id, 30, 30, 0)
        for bot in bots:  # each bot got its own copy, once
            assert [c.command_id for c in bot.commands if c.command_id.startswith(command.command_id)] == [
                f"{command.command_id}:{bot.client_id}"]

        everyone, summary = await operator.broadcast(cluster[2].target, pb2.ClientSelector(all_connected=True))
        mine = {r.client_id: r for r in everyone if r.client_id in set(ids)}
        by_client(everyone)
        assert set(mine) == set(ids) and all(r.ack.success for r in mine.values())
        assert summary.targeted == len(everyone) and summary.acked + summary.failed == summary.targeted
        assert summary.broadcast_id  # generated

        async def recorded() -> bool:
            rows = await sync_to_async(lambda: {r.command_id: r for r in CommandRecord.objects.filter(
                command_id__startswith=command.command_id)})()
            return len(rows) == 31 and rows
        rows = await eventually(recorded, timeout=10, message="broadcast records")
        parent = rows[command.command_id]
        assert parent.kind == "broadcast" and parent.client_id == "ids:30" and parent.outcome == "acked"
        assert parent.payload["counts"]["acked"] == 30 and parent.sent_by and parent.finished_at
        copy = rows[f"{command.command_id}:{ids[0]}"]
        assert copy.client_id == ids[0] and copy.kind == "pause" and copy.outcome == "acked" and copy.routed_to
        assert copy.payload["command_id"] == copy.command_id and copy.accepted_by == cluster[1].replica_id
        story = io.StringIO()
        await sync_to_async(call_command)("trace_command", copy.command_id, stdout=story)
        assert ids[0] in story.getvalue() and "acked by the client" in story.getvalue()
    finally:
        await close_all(bots)


async def test_client_type_selector(cluster, operator):
    kind = f"grid-{uuid.uuid4().hex[:6]}"
    typed, others = await fleet(cluster, 2), await fleet(cluster, 1)
    try:
        for bot in typed:
            bot.send(message(bot.client_id, register=pb2.ClientRegistration(client_name="g", client_type=kind)))
        await routable(operator, cluster, typed + others)

        async def registered() -> bool:
            return await sync_to_async(Client.objects.filter(client_type=kind).count)() == len(typed)
        await eventually(registered, timeout=10, message="registrations stored")
        results, summary = await operator.broadcast(cluster[0].target, pb2.ClientSelector(client_type=kind))
        assert set(by_client(results)) == {bot.client_id for bot in typed}
        assert (summary.targeted, summary.acked, summary.failed) == (6, 6, 0)
    finally:
        await close_all(typed + others)


async def test_a_selector_matching_nobody(cluster, operator):
    results, summary = await operator.broadcast(cluster[0].target, pb2.ClientSelector(client_type="nobody-has-this"))
    assert results == [] and (summary.targeted, summary.acked, summary.failed) == (0, 0, 0)


async def test_unknown_client_ids_are_reported_not_connected(cluster, operator):
    ghost = "ghost-" + uuid.uuid4().hex[:6]
    results, summary = await operator.broadcast(cluster[0].target, pb2.ClientSelector(client_ids=[ghost]))
    assert [r.client_id for r in results] == [ghost]
    assert not results[0].ack.success and "not connected" in results[0].ack.error
    assert (summary.targeted, summary.failed) == (1, 1)


async def test_a_malformed_selector_is_invalid_argument(cluster, operator):
    for selector in (pb2.ClientSelector(), pb2.ClientSelector(client_ids=["a"], all_connected=True)):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await operator.broadcast(cluster[0].target, selector)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "exactly one of client_ids, client_type, all_connected" in caught.value.details()


async def test_unauthorized_callers_are_refused(cluster):
    for op in (Operator("not-the-token"), Operator("")):
        try:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await op.broadcast(cluster[0].target, pb2.ClientSelector(all_connected=True))
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
        finally:
            await op.close()


async def test_a_bot_that_does_not_read_or_ack_fails_by_the_deadline_without_holding_up_the_others(cluster, operator):
    good = await fleet(cluster, 2)
    deaf = await connect(cluster[1], read=False)
    silent = await connect(cluster[2], auto_ack=False)
    bots = good + [deaf, silent]
    try:
        await routable(operator, cluster, good + [silent])
        await eventually(lambda: silent.commands, timeout=10)  # the routability probe reached it
        ids = [bot.client_id for bot in bots]
        arrivals: dict[str, float] = {}
        started = time.monotonic()
        request = pb2.BroadcastCommandRequest(selector=pb2.ClientSelector(client_ids=ids),
                                              command=pb2.DjangoCommand(pause=pb2.PauseClientCommand(reason="x")))
        summary = None
        async for item in operator.stub(cluster[0].target).BroadcastCommand(request, metadata=operator.metadata,
                                                                            timeout=3.0):
            if item.WhichOneof("result") == "client":
                arrivals[item.client.client_id] = time.monotonic() - started
                result = item.client
                if result.client_id in (deaf.client_id, silent.client_id):
                    assert not result.ack.success and "not acked before the deadline" in result.ack.error
                else:
                    assert result.ack.success, result.ack.error
            else:
                summary = item.summary
        elapsed = time.monotonic() - started
        assert summary is not None and (summary.targeted, summary.acked, summary.failed) == (8, 6, 2)
        assert set(arrivals) == set(ids)
        assert max(arrivals[b.client_id] for b in good) < 1.5  # the others were not held up
        assert elapsed < 3.0  # the call ended by its deadline
    finally:
        await close_all(bots)


async def test_redis_calls_per_broadcast_grow_with_replicas_not_clients(cluster, operator, redis_server):
    """Counted with MONITOR on the test's redis-server: lease reads, the fan-out, two posts per other replica
    (targets, then results) and the caller's pops, and nothing per bot. Upkeep running meanwhile (lease beats) is left out."""
    bots = await fleet(cluster, 10)
    try:
        await routable(operator, cluster, bots)
        selector = pb2.ClientSelector(client_ids=[b.client_id for b in bots])
        await operator.broadcast(cluster[0].target, selector)  # warm: every replica has loaded its scripts
        await asyncio.sleep(0.3)  # the routability probes' own calls are over
        async with RoundTrips(redis_server.url) as watch:
            results, summary = await operator.broadcast(cluster[0].target, selector)
        assert summary.acked == 30 and len(results) == 30
        calls, seen = watch.calls, watch.seen
        names = sorted(name for name, _ in calls)
        print(f"redis calls for a 30-bot broadcast over 3 replicas: {len(calls)}: {names}; all: {sorted(n for n, _ in seen)}")
        # measured: 7-8 = HGETALL, FAN_OUT, per other replica its targets and its results (4 EVALSHA), 1-2 BLMPOP
        assert len(calls) <= 2 * len(cluster) + 2, names
        assert not any(name == "DEL" for name, _ in calls), names  # a finished broadcast popped its list empty
    finally:
        await close_all(bots)
