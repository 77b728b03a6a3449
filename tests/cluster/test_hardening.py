"""Issue #11 findings reproduced against real replica processes and a real redis-server: no client can
hurt another, and no answer lies."""

from __future__ import annotations

import asyncio
import uuid

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc
from apps.crypto.grpc.services.auth import create_client_key
from apps.crypto.models import CommandRecord
from tests.cluster.test_failover import CRASH_ENDINGS
from tests.cluster.test_routing import connect, leave_briefly, wait_routable
from tests.support.cluster import OPERATOR_TOKEN
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, heartbeat, message
from tests.support.waiting import eventually


def ack(client_id: str, command_id: str, text: str = "done") -> pb2.ClientMessage:
    return message(client_id, command_ack=common_pb2.CommandAck(command_id=command_id, success=True, message=text))


async def record(command_id: str) -> CommandRecord | None:
    return await CommandRecord.objects.filter(command_id=command_id).afirst()


async def test_acks_for_commands_never_sent_store_nothing_in_redis(cluster, redis_server):
    """Finding 1: random command_ids with 2 KiB texts used to leave a 10-minute key each."""
    operator = Operator(OPERATOR_TOKEN)
    attacker, witness = await connect(cluster[0]), await connect(cluster[1])
    redis = redis_server.client()
    try:
        await wait_routable(operator, cluster[2].target, witness.client_id)
        before = redis.info("memory")["used_memory"]
        last = ""
        for n in range(1_500):
            last = f"random-{uuid.uuid4().hex}"
            attacker.send(ack(attacker.client_id, last, "x" * 2048))
        attacker.send(ack(attacker.client_id, "y" * 129))  # oversize: refused before the bus sees it
        await eventually(lambda: record(last), timeout=20, message="the attacker's acks were processed")
        assert not redis.keys("crypto:ackres:*")
        assert redis.info("memory")["used_memory"] - before < 256 * 1024  # was 1,500 x 2 KiB and more
        assert (await operator.execute(cluster[2].target, witness.client_id)).success
        assert attacker.status is None, "a valid ack is not an offence"
    finally:
        await attacker.__aexit__()
        await witness.__aexit__()
        await operator.close()


async def test_a_predicted_command_id_cannot_spoil_another_bots_command(cluster):
    """Finding 6: a bot that acks `predictable-N` first used to make the real ack a dropped duplicate."""
    operator = Operator(OPERATOR_TOKEN)
    attacker, victim = await connect(cluster[2]), await connect(cluster[1])
    command_id = f"predictable-{uuid.uuid4().hex[:8]}"
    try:
        await wait_routable(operator, cluster[0].target, victim.client_id)
        attacker.send(ack(attacker.client_id, command_id))
        await eventually(lambda: record(command_id), timeout=10, message="the forged ack was processed")
        answer = await operator.execute(cluster[0].target, victim.client_id, command_id)
        assert answer.success and answer.command_id == command_id, answer.error
        stored = await eventually(lambda: _acked(command_id, victim.client_id), timeout=10,
                                  message="the victim's record, acked")
        assert stored.kind == "pause" and stored.ack_message == "done"
    finally:
        await attacker.__aexit__()
        await victim.__aexit__()
        await operator.close()


async def _acked(command_id: str, client_id: str) -> CommandRecord | None:
    row = await record(command_id)
    return row if row is not None and (row.outcome, row.client_id) == ("acked", client_id) else None


async def test_a_command_id_is_used_once_and_empty_ones_are_generated(cluster):
    """Finding 6: reusing an id is refused precisely; the server generates a fresh id when none is given."""
    operator = Operator(OPERATOR_TOKEN)
    bot = await connect(cluster[1])
    command_id = f"mine-{uuid.uuid4().hex[:8]}"
    try:
        await wait_routable(operator, cluster[0].target, bot.client_id)
        assert (await operator.execute(cluster[0].target, bot.client_id, command_id)).success
        for target in (cluster[0].target, cluster[2].target):
            try:
                await operator.execute(target, bot.client_id, command_id)
                raise AssertionError("a reused command_id must be refused")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.ALREADY_EXISTS and command_id in exc.details()
        empty = pb2.SendCommandRequest(client_id=bot.client_id, command=pb2.DjangoCommand(ping=pb2.PingCommand()))
        stub = operator.stub(cluster[2].target)
        sent = [await stub.SendCommandToClient(empty, metadata=operator.metadata, timeout=5) for _ in range(2)]
        acked = await stub.ExecuteCommandSync(empty, metadata=operator.metadata, timeout=5)
        ids = {sent[0].command_id, sent[1].command_id, acked.command_id}
        assert all(r.success for r in sent) and len(ids) == 3 and "" not in ids
    finally:
        await bot.__aexit__()
        await operator.close()


async def test_streams_without_valid_credentials_are_refused_before_any_message(cluster):
    """Finding 3: they used to be held for the 90 s heartbeat timeout."""
    for metadata in ((), (("x-api-key", "ck_not-a-key"),)):
        async with grpc.aio.insecure_channel(cluster[0].target) as channel:
            call = pb2_grpc.CryptoStreamingServiceStub(channel).ConnectClient(metadata=metadata)
            started = asyncio.get_running_loop().time()
            try:
                await asyncio.wait_for(call.read(), 3)
                raise AssertionError("expected the stream to be refused")
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, exc.details()
            assert asyncio.get_running_loop().time() - started < 2.0


async def test_a_client_that_cancels_while_attaching_leaves_no_ghost(cluster):
    """Finding 2: streams cancelled 0-4 ms after their first message stayed as sessions that callers were
    told received their commands."""
    operator = Operator(OPERATOR_TOKEN)
    bots = [(f"ghost-{uuid.uuid4().hex[:10]}", "") for _ in range(240)]
    bots = [(client_id, await create_client_key(client_id)) for client_id, _ in bots]
    try:
        async with grpc.aio.insecure_channel(cluster[1].target) as channel:
            stub = pb2_grpc.CryptoStreamingServiceStub(channel)

            for n, (client_id, api_key) in enumerate(bots):  # one at a time, so the delays mean what they say
                call = stub.ConnectClient(iter([heartbeat(client_id)]), metadata=(("x-api-key", api_key),))
                await asyncio.sleep((n % 60) / 4000)  # 0-15 ms: some land while the stream is being attached
                call.cancel()
        await asyncio.sleep(1.0)
        answers = await asyncio.gather(*(operator.send(cluster[n % 3].target, client_id, timeout=8)
                                         for n, (client_id, _) in enumerate(bots)))
        delivered = [client_id for (client_id, _), answer in zip(bots, answers) if answer.success]
        assert delivered == [], f"{len(delivered)} commands reported delivered to streams that are gone"
    finally:
        await operator.close()
    assert cluster[1].process.poll() is None
    assert "stream.heartbeat_timeout client_id=ghost-" not in cluster[1].log_path.read_text(errors="replace")


async def test_an_ack_after_the_timeout_is_recorded_as_late(cluster):
    """Finding 8: a late ack used to leave the record at timed_out."""
    operator = Operator(OPERATOR_TOKEN)
    bot = await connect(cluster[1], auto_ack=False)
    try:
        await wait_routable(operator, cluster[0].target, bot.client_id)
        for target in (cluster[0].target, cluster[1].target):  # cross-replica, then same-replica
            command_id = f"late-{uuid.uuid4().hex[:8]}"
            answer = await operator.execute(target, bot.client_id, command_id, timeout=1.5)
            assert not answer.success and "timed out" in answer.error
            await eventually(lambda: _with_outcome(command_id, "timed_out"), timeout=10, message="timed_out")
            bot.send(ack(bot.client_id, command_id, "finally"))
            late = await eventually(lambda: _with_outcome(command_id, "late"), timeout=10, message="late")
            assert late.ack_success and late.ack_message == "finally"
    finally:
        await bot.__aexit__()
        await operator.close()


async def _with_outcome(command_id: str, outcome: str) -> CommandRecord | None:
    row = await record(command_id)
    return row if row is not None and row.outcome == outcome else None


async def test_a_command_resent_after_its_owner_died_is_marked_retry(cluster):
    """Finding 5: the bot got the same command twice with nothing to tell the copies apart."""
    operator = Operator(OPERATOR_TOKEN)
    victim = cluster[1]
    bot = await connect(victim, auto_ack=False)
    back: RawBot | None = None
    try:
        await wait_routable(operator, cluster[0].target, bot.client_id)
        command_id = f"twice-{uuid.uuid4().hex[:8]}"
        execute = asyncio.create_task(operator.execute(cluster[0].target, bot.client_id, command_id, timeout=15))
        first = await _command(bot, command_id)
        assert not first.retry
        victim.kill()
        assert await bot.ended() in CRASH_ENDINGS
        back = RawBot(cluster[2].target, bot.client_id, bot.api_key)
        await back.__aenter__()
        back.send(heartbeat(bot.client_id))
        again = await _command(back, command_id)
        assert again.retry
        answer = await execute
        assert answer.success and answer.command_id == command_id, answer.error
    finally:
        await bot.__aexit__()
        if back is not None:
            await back.__aexit__()
        await operator.close()
        victim.start().wait_ready()


async def _command(bot: RawBot, command_id: str) -> pb2.DjangoCommand:
    return await eventually(lambda: next((c for c in bot.commands if c.command_id == command_id), None),
                            message=f"{command_id} received")


async def test_a_held_command_taken_at_the_last_moment_is_reported_delivered(cluster):
    """Finding 7: a bot reconnecting in the last ~80 ms of the caller's deadline got the command while the
    caller was told it was not delivered. Whatever the timing, the answer must match what the bot got:
    delivered but not acked is "timed out waiting for CommandAck", never a delivery failure."""
    operator = Operator(OPERATOR_TOKEN)
    outcomes = []
    for attempt in range(6):
        bot = await leave_briefly(operator, cluster)
        back = None
        command_id = f"held-{uuid.uuid4().hex[:8]}"
        try:
            executing = asyncio.create_task(operator.execute(cluster[0].target, bot.client_id, command_id,
                                                             timeout=1.25))
            await asyncio.sleep(0.87 + attempt * 0.02)  # the server answers at 1.0 s
            back = RawBot(cluster[2].target, bot.client_id, bot.api_key, auto_ack=False)
            await back.__aenter__()
            back.send(heartbeat(bot.client_id))
            answer = await executing
            await asyncio.sleep(0.5)
            received = command_id in [c.command_id for c in back.commands]
            delivered = "waiting for CommandAck" in answer.error
            assert not answer.success and delivered == received, (attempt, answer.error, received)
            outcomes.append(received)
        finally:
            if back is not None:
                await back.__aexit__()
    await operator.close()
    assert any(outcomes), "no attempt reconnected in time: the test did not probe the window"
