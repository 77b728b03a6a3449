"""CryptoStreamingCommandClient.broadcast (async and blocking) against a real single replica (in-process Redis)."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from apps.crypto.grpc.services.commands import (
    CommandClientError,
    CryptoStreamingCommandClient,
    build_pause,
    connect_sync,
    selector,
)
from tests.support.grpc_server import running_server
from tests.support.rawbot import RawBot, heartbeat
from tests.support.waiting import eventually


async def bots(server, count: int, **kwargs) -> list[RawBot]:
    """`count` bots with their own keys, returned once each stream is attached to the server's replica."""
    started = []
    for _ in range(count):
        client_id = f"bc-{uuid.uuid4().hex[:8]}"
        bot = RawBot(server.target, client_id, await server.make_client_key(client_id), **kwargs)
        await bot.__aenter__()
        bot.send(heartbeat(client_id))
        started.append(bot)
    sessions = server.replica.runtime.bus.sessions
    try:
        await eventually(lambda: all(b.client_id in sessions for b in started), message="streams attached")
    except BaseException:
        await asyncio.gather(*(b.__aexit__() for b in started))
        raise
    return started


async def test_broadcast_reaches_every_bot_and_returns_their_acks():
    async with running_server() as server:
        fleet = await bots(server, 4)
        try:
            seen = []
            async with CryptoStreamingCommandClient(server.target, server.operator_token, ack_timeout=3) as client:
                outcome = await client.broadcast(selector([b.client_id for b in fleet]), build_pause("halt"),
                                                 on_result=seen.append)
            assert {r.client_id for r in outcome.results} == {b.client_id for b in fleet}
            assert len(seen) == 4 and outcome.failed == []
            assert (outcome.summary.targeted, outcome.summary.acked, outcome.summary.failed) == (4, 4, 0)
            assert all(b.commands[-1].pause.reason == "halt" for b in fleet)

            with connect_sync(server.target, server.operator_token, ack_timeout=3) as blocking:
                again = await asyncio.to_thread(
                    blocking.run, lambda c: c.broadcast(selector(all_connected=True), build_pause("again")))
            assert again.summary.acked == 4
        finally:
            await asyncio.gather(*(b.__aexit__() for b in fleet))


async def test_broadcast_errors_are_command_client_errors():
    async with running_server() as server:
        async with CryptoStreamingCommandClient(server.target, server.operator_token) as client:
            with pytest.raises(CommandClientError) as err:
                await client.broadcast(selector(), build_pause())
        assert err.value.code == grpc.StatusCode.INVALID_ARGUMENT and "exactly one of" in err.value.details
        async with CryptoStreamingCommandClient(server.target, "wrong") as client:
            with pytest.raises(CommandClientError) as err:
                await client.broadcast(selector(all_connected=True), build_pause())
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED


def send_command(server, *args: str) -> tuple[str, str]:
    from io import StringIO

    from django.core.management import call_command

    out, err = StringIO(), StringIO()
    call_command("send_command", *args, "--target", server.target, "--token", server.operator_token,
                 "--timeout", "3", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


async def test_send_command_fleet_flags_print_progress_a_table_and_the_summary():
    from django.core.management.base import CommandError

    async with running_server() as server:
        fleet = await bots(server, 2)
        silent = (await bots(server, 1, auto_ack=False))[0]
        try:
            ids = ",".join(b.client_id for b in fleet)
            out, err = await asyncio.to_thread(send_command, server, "--clients", ids, "pause", "--reason", "cli")
            assert "2 results: 2 acked, 0 failed" in err
            assert all(b.client_id in out for b in fleet) and "targeted=2 acked=2 failed=0" in out
            assert all(b.commands[-1].pause.reason == "cli" for b in fleet)

            with pytest.raises(CommandError, match="1 of 3 bots failed"):
                await asyncio.to_thread(send_command, server, "--all", "resume")  # RawBot acks no pings
            with pytest.raises(CommandError, match="either a client_id or one of"):
                await asyncio.to_thread(send_command, server, "bot-1", "ping", "--all")
            with pytest.raises(CommandError, match="a client_id is required"):
                await asyncio.to_thread(send_command, server, "ping")
        finally:
            await asyncio.gather(*(b.__aexit__() for b in fleet + [silent]))


async def test_broadcast_metrics():
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    async with running_server() as server:
        fleet = await bots(server, 2)
        silent = (await bots(server, 1, auto_ack=False))[0]
        try:
            calls = sample("crypto_broadcasts_total", selector="client_ids")
            acked = sample("crypto_broadcast_results_total", outcome="acked")
            timed_out = sample("crypto_broadcast_results_total", outcome="timed_out")
            timings = sample("crypto_broadcast_seconds_count")
            async with CryptoStreamingCommandClient(server.target, server.operator_token, ack_timeout=1) as client:
                outcome = await client.broadcast(selector([b.client_id for b in fleet + [silent]]), build_pause())
            assert outcome.summary.failed == 1
            assert sample("crypto_broadcasts_total", selector="client_ids") == calls + 1
            assert sample("crypto_broadcast_results_total", outcome="acked") == acked + 2
            assert sample("crypto_broadcast_results_total", outcome="timed_out") == timed_out + 1
            assert sample("crypto_broadcast_seconds_count") == timings + 1
        finally:
            await asyncio.gather(*(b.__aexit__() for b in fleet + [silent]))
