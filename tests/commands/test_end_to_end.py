"""End to end against a REAL replica (tests/support/grpc_server): BotClient + command client + manage.py.

Needs the lead's server to (a) end refused streams with the AuthError's status and (b) send initial
metadata once a stream is accepted, so BotClient.connected means "accepted" (see bot_client.py).
"""

from __future__ import annotations

import asyncio
import uuid
from io import StringIO

import grpc
import pytest
from django.core.management import call_command

from apps.crypto.grpc.examples.bot_client import BotRejected
from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.commands import (
    CryptoStreamingCommandClient,
    build_ping,
    pause,
    ping,
    request_status,
    resume,
    sync_wallets,
)
from apps.crypto.models import Wallet
from tests.support.grpc_server import RunningServer, running_server
from tests.support.ports import free_port
from tests.support.waiting import eventually

from .bots import demo_bot, running_bot

ACTIVE, PAUSED = common_pb2.CLIENT_STATUS_ACTIVE, common_pb2.CLIENT_STATUS_PAUSED


def unique_id() -> str:
    return f"e2e-{uuid.uuid4().hex[:8]}"


def operator(server: RunningServer) -> CryptoStreamingCommandClient:
    return CryptoStreamingCommandClient(server.target, server.operator_token, ack_timeout=5.0)


async def test_every_command_reaches_the_bot_and_its_ack_comes_back() -> None:
    async with running_server() as server, operator(server) as client:
        client_id = unique_id()
        bot, demo = demo_bot(server.target, client_id, await server.make_client_key(client_id))
        async with running_bot(bot):
            ack = await pause(client, client_id, reason="maintenance")
            assert (ack.success, ack.current_status, demo.paused) == (True, PAUSED, True)
            assert ack.command_id and "maintenance" in ack.message
            ack = await request_status(client, client_id, include_stats=True)
            assert ack.success and ack.current_status == PAUSED
            ack = await resume(client, client_id, message="back")
            assert (ack.success, ack.current_status, demo.paused) == (True, ACTIVE, False)
            ack = await ping(client, client_id, sequence=1)
            assert ack.success and ack.message == "pong"
            ack = await sync_wallets(client, client_id, symbols=["BTC", "ETH"])
            assert ack.success and ack.message == "synced 2 wallets"
            await eventually(lambda: Wallet.objects.filter(client__client_id=client_id).acount(), 5,
                             "wallet updates stored")
            response = await ping(client, client_id, wait=False)
            assert response.success
        assert bot.commands_handled >= 6


async def test_the_same_command_object_sent_twice_reaches_the_bot_as_two_commands() -> None:
    """Issue 11 finding 6 on a real replica: the caller's object is never changed, so a resend is a new command.

    Client-side only: the ids the bot saw and the acks; SendCommandResponse.command_id is the server's part.
    """
    async with running_server() as server, operator(server) as client:
        client_id = unique_id()
        bot, demo = demo_bot(server.target, client_id, await server.make_client_key(client_id))
        seen: list[str] = []

        async def recording_ping(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
            seen.append(command.command_id)
            return await demo.on_ping(command)

        bot.handlers["ping"] = recording_ping
        async with running_bot(bot):
            command = build_ping(7)
            before = command.SerializeToString()
            acks = [await client.execute(client_id, command) for _ in range(2)]
            responses = [await client.send(client_id, command) for _ in range(2)]
            await eventually(lambda: len(seen) == 4, 5, "four pings handled")
        assert command.SerializeToString() == before and command.command_id == ""
        assert all(ack.success and ack.message == "pong" for ack in acks) and all(r.success for r in responses)
        assert [ack.command_id for ack in acks] == seen[:2]
        assert all(seen) and len(set(seen)) == 4  # four sends, four ids, none reused
        assert bot.commands_handled == 4


async def test_send_command_management_command_end_to_end() -> None:
    def send_command(*args: str) -> str:
        out = StringIO()
        call_command("send_command", *args, "--target", server.target, "--token", server.operator_token,
                     stdout=out)
        return out.getvalue().strip()

    async with running_server() as server:
        client_id = unique_id()
        bot, demo = demo_bot(server.target, client_id, await server.make_client_key(client_id))
        async with running_bot(bot):
            out = await asyncio.to_thread(send_command, client_id, "pause", "--wait", "--reason", "cli")
            assert out.startswith("ack ") and "success=True" in out and demo.paused
            out = await asyncio.to_thread(send_command, client_id, "ping", "--wait", "--sequence", "2")
            assert "message='pong'" in out
            out = await asyncio.to_thread(send_command, client_id, "resume")
            assert out.startswith("sent ")
            await eventually(lambda: not demo.paused, 5, "resume handled")


async def test_bot_reconnects_after_the_server_restarts() -> None:
    port = free_port()
    client_id = unique_id()
    async with running_server(port=port) as server:
        key = await server.make_client_key(client_id)
        bot, _ = demo_bot(server.target, client_id, key)
        task = asyncio.create_task(bot.run())
        await asyncio.wait_for(bot.connected.wait(), 10)
    try:
        await eventually(lambda: not bot.connected.is_set(), 10, "bot saw the replica go")
        async with running_server(port=port) as server, operator(server) as client:
            await asyncio.wait_for(bot.connected.wait(), 10)
            assert bot.connects == 2
            assert (await ping(client, client_id)).message == "pong"
            await bot.stop()
        assert task.exception() is None
    finally:
        await bot.stop()
        await asyncio.gather(task, return_exceptions=True)


async def test_bot_with_another_clients_key_stops_on_permission_denied() -> None:
    async with running_server() as server:
        key = await server.make_client_key(unique_id())
        bot, _ = demo_bot(server.target, unique_id(), key)
        with pytest.raises(BotRejected) as err:
            await asyncio.wait_for(bot.run(), 10)
        assert err.value.code == grpc.StatusCode.PERMISSION_DENIED and bot.connects == 0


async def test_bot_with_an_unknown_key_stops_on_unauthenticated() -> None:
    async with running_server() as server:
        bot, _ = demo_bot(server.target, unique_id(), "ck_not-a-real-key")
        with pytest.raises(BotRejected) as err:
            await asyncio.wait_for(bot.run(), 10)
        assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
