"""A command's record carries the true times of its events (#15, item 5)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from apps.crypto.grpc.services.records import CommandJournal
from apps.crypto.models import CommandRecord
from tests.ops.support import connected_bot, finished_record
from tests.support.grpc_server import RunningServer, running_server
from tests.support.operator import Operator
from tests.support.waiting import eventually


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
