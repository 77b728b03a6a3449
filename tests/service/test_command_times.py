"""A command's record carries the true times of its events, and the replica's own keepalive pings are
counted, not recorded as operator commands (#15, item 5)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

from prometheus_client import REGISTRY

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.records import CommandJournal
from apps.crypto.models import CommandRecord
from tests.ops.support import connected_bot, finished_record
from tests.support.grpc_server import RunningServer, running_server
from tests.support.operator import Operator
from tests.support.rawbot import RawBot, message
from tests.support.waiting import eventually

KEEPALIVES = "crypto_keepalive_pings_total"


async def hold_journal(server: RunningServer) -> Callable[[], Awaitable[None]]:
    """Keep the replica's journal from writing by itself (its next write is an hour away), so records are
    written well after their events, as under load; returns the write to call when the test wants it."""
    journal: CommandJournal = server.replica.runtime.journal
    started_with, journal.interval = journal.interval, 3600.0
    await asyncio.sleep(started_with + 0.15)  # the write loop's current pause ends; its next one is long
    return journal.flush


def in_event_order(record: CommandRecord) -> None:
    assert record.accepted_at is not None, "accepted_at is taken at acceptance"
    assert record.delivered_at is not None and record.finished_at is not None
    assert record.accepted_at <= record.delivered_at <= record.finished_at, (
        record.accepted_at, record.delivered_at, record.finished_at)


async def test_accepted_delivered_finished_are_the_event_times_even_when_the_record_is_written_late():
    async with running_server() as server:
        write_journal = await hold_journal(server)
        bot = await connected_bot(server)
        operator = Operator(server.operator_token)
        try:
            before = asyncio.get_running_loop().time()
            waited = await operator.execute(server.target, bot.client_id)  # ExecuteCommandSync
            sent = await operator.send(server.target, bot.client_id)  # SendCommandToClient: the ack is stored
            assert waited.success and sent.success  # by the owner with the bot's messages
            await eventually(lambda: CommandRecord.objects.filter(command_id=sent.command_id,
                                                                  finished_at__isnull=False).aexists(),
                             message="the no-wait command's ack stored")
            await asyncio.sleep(0.2)
            assert asyncio.get_running_loop().time() - before < 3600  # the journal did not write by itself
            await write_journal()
            records = [await finished_record(waited.command_id), await finished_record(sent.command_id)]
        finally:
            await bot.__aexit__()
            await operator.close()
    for record in records:
        in_event_order(record)
        assert record.kind == "pause" and record.sent_by.startswith("operator:")
        assert record.accepted_by == server.replica.runtime.replica_id and record.outcome == "acked"
        assert record.accepted_at < record.created_at  # the row was written after the command's end
    assert records[0].wait_for_ack and not records[1].wait_for_ack


async def _ack_everything(bot: RawBot) -> None:
    """Ack every command, keepalive pings included, as real bots do (RawBot's auto_ack skips pings)."""
    acked = 0
    while True:
        commands = await bot.wait_commands(acked + 1, timeout=60)
        for command in commands[acked:]:
            bot.send(message(bot.client_id, command_ack=common_pb2.CommandAck(
                command_id=command.command_id, success=True, message="pong")))
        acked = len(commands)


def _operator_ping(client_id: str) -> pb2.SendCommandRequest:
    return pb2.SendCommandRequest(client_id=client_id, command=pb2.DjangoCommand(
        command_id=uuid.uuid4().hex, ping=pb2.PingCommand(sequence=7)))


async def test_keepalive_pings_are_counted_and_leave_no_command_record_while_operator_pings_do():
    before = REGISTRY.get_sample_value(KEEPALIVES) or 0.0
    async with running_server(enable_ping=True, ping_interval=0.1) as server:
        bot = await connected_bot(server, auto_ack=False)
        acking = asyncio.create_task(_ack_everything(bot))
        operator = Operator(server.operator_token)
        try:
            await bot.wait_commands(3, timeout=10)  # keepalive pings, acked as they come
            keepalive_ids = [c.command_id for c in bot.commands if c.WhichOneof("command") == "ping"]
            assert len(keepalive_ids) >= 3
            stub = operator.stub(server.target)
            sent = await stub.SendCommandToClient(_operator_ping(bot.client_id), metadata=operator.metadata,
                                                  timeout=10)
            executed = await stub.ExecuteCommandSync(_operator_ping(bot.client_id), metadata=operator.metadata,
                                                     timeout=10)
            assert sent.success and executed.success and executed.message == "pong"
            # the operator's no-wait ping is acked on the same stream after the keepalive acks, so once its
            # ack is stored theirs have been through the same path
            await finished_record(sent.command_id)
            await finished_record(executed.command_id)
            after = REGISTRY.get_sample_value(KEEPALIVES)
            await asyncio.sleep(0.3)  # later keepalive acks, and the journal's write of the operator's side
            stored = [r async for r in CommandRecord.objects.filter(client_id=bot.client_id).order_by("id")]
        finally:
            acking.cancel()
            await asyncio.gather(acking, return_exceptions=True)
            await bot.__aexit__()
            await operator.close()
    assert not await CommandRecord.objects.filter(command_id__in=keepalive_ids).aexists()
    assert {r.command_id for r in stored} == {sent.command_id, executed.command_id}, [
        (r.command_id, r.kind, r.sent_by) for r in stored]
    assert after is not None, f"{KEEPALIVES} is registered"
    assert after - before >= len(keepalive_ids)
    sent_record, executed_record = (next(r for r in stored if r.command_id == reply.command_id)
                                    for reply in (sent, executed))
    for record in (sent_record, executed_record):
        assert (record.kind, record.outcome, record.ack_success, record.ack_message) == ("ping", "acked", True,
                                                                                         "pong")
        assert record.sent_by.startswith("operator:") and record.payload["ping"] == {"sequence": 7}
        in_event_order(record)
    assert executed_record.wait_for_ack and not sent_record.wait_for_ack
