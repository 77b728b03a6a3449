"""`manage.py trace_command`: a command's story, including one that crossed replicas."""

from __future__ import annotations

import asyncio
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command

from apps.crypto.models import CommandRecord
from apps.crypto.operator_commands import CommandRequest, run_commands
from tests.ops.support import connected_bot, finished_record, new_client_id, owned_in_redis
from tests.service.test_command_times import hold_journal
from tests.support.grpc_server import running_server


def trace(*args: str) -> str:
    out = io.StringIO()
    call_command("trace_command", *args, stdout=out)
    return out.getvalue()


async def test_cross_replica_command_story(redis_server):
    async with running_server(redis_url=redis_server.url) as a, running_server(redis_url=redis_server.url) as b:
        bot = await connected_bot(b)
        try:
            await owned_in_redis(redis_server.url, bot.client_id)
            [reply] = await run_commands([CommandRequest(bot.client_id, "pause", {"reason": "trace me"})],
                                         target=a.target, token=a.operator_token)
            assert reply.success, reply
            await finished_record(reply.command_id, routed=True)
            story = json.loads(await asyncio.to_thread(trace, reply.command_id, "--json"))
            text = await asyncio.to_thread(trace, reply.command_id)
        finally:
            await bot.__aexit__()
    assert story["accepted_by"] == a.replica.runtime.replica_id
    assert story["routed_to"] == b.replica.runtime.replica_id
    assert story["accepted_by"] != story["routed_to"]
    assert story["client"] == bot.client_id and story["kind"] == "pause"
    assert story["payload"]["pause"] == {"reason": "trace me"}
    assert story["sent_by"].startswith("operator:") and story["wait_for_ack"] is True
    assert story["outcome"] == "acked" and story["ack_success"] is True and story["ack_message"] == "done"
    assert story["delivered_at"] and story["finished_at"] and story["took"].endswith("s")
    assert story["summary"] == "acked by the client: done"
    for label in ("sent_by", "accepted_by", "routed_to", "delivered_at", "outcome", "finished_at"):
        assert label in text
    assert a.replica.runtime.replica_id in text and b.replica.runtime.replica_id in text


async def test_failed_command_says_why():
    async with running_server() as server:
        [reply] = await run_commands([CommandRequest(new_client_id(), "ping")], target=server.target,
                                     token=server.operator_token)
        assert not reply.success
        await finished_record(reply.command_id)
        story = json.loads(await asyncio.to_thread(trace, reply.command_id, "--json"))
    assert story["outcome"] == "failed" and not story["delivered_at"] and not story["routed_to"]
    assert "not connected" in story["ack_error"]
    assert story["summary"].startswith("failed: ") and "not connected" in story["summary"]


def test_unknown_command_id_is_a_clear_error():
    with pytest.raises(CommandError, match="no command with id 'no-such-command'"):
        trace("no-such-command")


def story_of(text: str) -> dict[str, str]:
    """The text story as label -> value (labels have no spaces; values may)."""
    return dict(line.split(None, 1) for line in text.splitlines() if line.strip())


def no_negative_time(text: str) -> None:
    assert not re.search(r"(?<![\w:])-\d", text), text  # no '-0.012s', no '-12' anywhere


async def test_trace_shows_true_times_and_no_negative_duration_when_the_record_is_written_late():
    async with running_server() as server:
        write_journal = await hold_journal(server)  # the record is written after the command ended
        bot = await connected_bot(server)
        try:
            [reply] = await run_commands([CommandRequest(bot.client_id, "pause", {"reason": "late record"})],
                                         target=server.target, token=server.operator_token)
            assert reply.success, reply
            await asyncio.sleep(0.1)
            await write_journal()
            await finished_record(reply.command_id)
            story = json.loads(await asyncio.to_thread(trace, reply.command_id, "--json"))
            text = await asyncio.to_thread(trace, reply.command_id)
        finally:
            await bot.__aexit__()
    no_negative_time(text)
    times = {label: datetime.fromisoformat(story[label])
             for label in ("accepted_at", "delivered_at", "finished_at", "recorded_at")}
    assert times["accepted_at"] <= times["delivered_at"] <= times["finished_at"] < times["recorded_at"]
    took = (times["finished_at"] - times["accepted_at"]).total_seconds()
    assert story["took"] == f"{took:.3f}s" and took >= 0
    rows = story_of(text)
    assert rows["took"] == story["took"]
    for label, at in times.items():
        assert datetime.fromisoformat(rows[label]) == at


async def test_trace_says_clocks_disagree_instead_of_printing_a_negative_duration():
    """An ack stored by the owner replica is timed by its clock; one running behind the accepting
    replica's clock can stamp it before the acceptance."""
    accepted = datetime.now(UTC)
    record = await CommandRecord.objects.acreate(
        command_id=uuid.uuid4().hex, client_id="bot-skew", kind="pause", accepted_by="replica-a",
        routed_to="replica-b", outcome="acked", ack_success=True, ack_message="done", accepted_at=accepted,
        delivered_at=accepted + timedelta(milliseconds=2), finished_at=accepted - timedelta(milliseconds=12))
    story = json.loads(await asyncio.to_thread(trace, record.command_id, "--json"))
    text = await asyncio.to_thread(trace, record.command_id)
    no_negative_time(text)
    assert story["took"].startswith("unknown: finished_at is 0.012s before accepted_at")
    assert "replica-a" in story["took"] and "replica-b" in story["took"] and "disagree" in story["took"]
    assert story_of(text)["took"] == story["took"]


async def test_trace_of_a_record_without_an_acceptance_time_shows_no_duration():
    """Records written before accepted_at existed (and acks of commands no replica accepted) have none."""
    record = await CommandRecord.objects.acreate(command_id=uuid.uuid4().hex, client_id="bot-old", kind="ping",
                                                 outcome="acked", finished_at=datetime.now(UTC))
    story = json.loads(await asyncio.to_thread(trace, record.command_id, "--json"))
    assert story["accepted_at"] is None and story["took"] == "-"
    assert story["recorded_at"] and story["finished_at"]
