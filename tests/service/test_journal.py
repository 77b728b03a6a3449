"""The command journal merges a command's events and never steps back from a final outcome."""

from __future__ import annotations

import asyncio
import uuid

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.bus.outcomes import Delivery
from apps.crypto.grpc.services.records import CommandJournal
from apps.crypto.models import CommandRecord
from tests.support.waiting import eventually


def command() -> pb2.DjangoCommand:
    return pb2.DjangoCommand(command_id=uuid.uuid4().hex, ping=pb2.PingCommand(sequence=3))


async def test_events_of_one_command_become_one_complete_row():
    journal, cmd = CommandJournal(), command()
    journal.accepted("bot-j", cmd, "operator:x", "r1", wait=True)
    journal.delivery(cmd.command_id, Delivery(True, routed_to="r2"))
    journal.outcome(common_pb2.CommandAck(command_id=cmd.command_id, success=True, message="pong"), False)
    await journal.flush()
    row = await CommandRecord.objects.aget(command_id=cmd.command_id)
    assert (row.kind, row.accepted_by, row.routed_to, row.outcome, row.ack_message) == ("ping", "r1", "r2",
                                                                                         "acked", "pong")
    assert row.delivered_at is not None and row.finished_at is not None


async def test_a_late_delivery_note_keeps_the_owners_final_outcome():
    journal, cmd = CommandJournal(), command()
    await CommandRecord.objects.acreate(command_id=cmd.command_id, client_id="bot-j", outcome="acked")
    journal.delivery(cmd.command_id, Delivery(True, routed_to="r2"))
    await journal.flush()
    row = await CommandRecord.objects.aget(command_id=cmd.command_id)
    assert (row.outcome, row.routed_to) == ("acked", "r2")


async def test_events_split_over_flushes_add_up_and_keep_what_earlier_flushes_wrote():
    journal, cmd = CommandJournal(), command()
    journal.accepted("bot-j", cmd, "operator:x", "r1", wait=True)
    await journal.flush()
    journal.outcome(common_pb2.CommandAck(command_id=cmd.command_id, success=True, message="pong"), False)
    await journal.flush()
    journal.delivery(cmd.command_id, Delivery(True, routed_to="r2"))  # the delivery note arrives last
    await journal.flush()
    row = await CommandRecord.objects.aget(command_id=cmd.command_id)
    assert (row.client_id, row.kind, row.sent_by, row.wait_for_ack) == ("bot-j", "ping", "operator:x", True)
    assert (row.outcome, row.routed_to, row.ack_message, row.ack_success) == ("acked", "r2", "pong", True)
    assert row.payload["command_id"] == cmd.command_id and row.created_at is not None


async def test_a_row_first_seen_through_its_delivery_gets_defaults_and_the_delivered_outcome():
    journal, cmd = CommandJournal(), command()
    journal.delivery(cmd.command_id, Delivery(True, routed_to="r3"))
    await journal.flush()
    row = await CommandRecord.objects.aget(command_id=cmd.command_id)
    assert (row.outcome, row.routed_to, row.client_id, row.payload, row.ack_success) == ("delivered", "r3", "", {},
                                                                                        None)


async def test_full_buffer_drops_and_counts():
    journal = CommandJournal(limit=1)
    first, second = command(), command()
    journal.accepted("bot-j", first, "", "r1", wait=False)
    journal.accepted("bot-j", second, "", "r1", wait=False)
    await journal.close()
    assert await CommandRecord.objects.filter(command_id=first.command_id).aexists()
    assert not await CommandRecord.objects.filter(command_id=second.command_id).aexists()


async def test_a_full_batch_is_written_without_waiting_for_the_interval():
    journal = CommandJournal(interval=3600, batch=3)
    journal.start(lambda coro, name: asyncio.get_running_loop().create_task(coro, name=name))
    sent = [command() for _ in range(3)]
    try:
        for cmd in sent[:2]:
            journal.accepted("bot-j", cmd, "", "r1", wait=False)
        await asyncio.sleep(0.1)
        assert not await CommandRecord.objects.filter(command_id=sent[0].command_id).aexists()
        journal.accepted("bot-j", sent[2], "", "r1", wait=False)

        async def written() -> bool:
            return await CommandRecord.objects.filter(command_id__in=[c.command_id for c in sent]).acount() == 3

        await eventually(written, timeout=5, message="the batch written")
    finally:
        await journal.close()
