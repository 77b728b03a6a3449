"""`manage.py trace_command`: a command's story, including one that crossed replicas."""

from __future__ import annotations

import asyncio
import io
import json

import pytest
from django.core.management import CommandError, call_command

from apps.crypto.operator_commands import CommandRequest, run_commands
from tests.ops.support import connected_bot, finished_record, new_client_id, owned_in_redis
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
