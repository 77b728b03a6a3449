"""ConnectClient, SendCommandToClient and ExecuteCommandSync against a real in-process replica."""

from __future__ import annotations

import asyncio
import sqlite3
import uuid

import grpc
import pytest
from django.conf import settings

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc
from apps.crypto.models import CommandRecord
from tests.support.grpc_server import running_server, stub
from tests.support.rawbot import RawBot, heartbeat, message
from tests.support.waiting import eventually


def new_id() -> str:
    return f"bot-{uuid.uuid4().hex[:10]}"


def ping_request(client_id: str, command_id: str = "") -> pb2.SendCommandRequest:
    return pb2.SendCommandRequest(client_id=client_id, command=pb2.DjangoCommand(
        command_id=command_id, pause=pb2.PauseClientCommand(reason="test")))


async def connected_bot(server, **kwargs) -> RawBot:
    client_id = kwargs.pop("client_id", None) or new_id()
    bot = RawBot(server.target, client_id, await server.make_client_key(client_id), **kwargs)
    await bot.__aenter__()
    bot.send(heartbeat(client_id))
    await eventually(lambda: client_id in server.replica.runtime.bus.sessions, message="attached")
    return bot


async def test_first_message_without_client_id_is_invalid_argument():
    async with running_server(auth=False) as server:
        async with RawBot(server.target, "") as bot:
            bot.send(pb2.ClientMessage(heartbeat=pb2.HeartbeatUpdate()))
            assert await bot.ended() == grpc.StatusCode.INVALID_ARGUMENT
            assert "client_id" in bot.details


async def test_silent_stream_ends_instead_of_hanging():
    async with running_server(auth=False, heartbeat_interval=0.2, heartbeat_timeout=0.5) as server:
        async with RawBot(server.target, "x") as bot:
            assert await bot.ended(5) == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_changed_client_id_ends_stream():
    async with running_server() as server:
        bot = await connected_bot(server)
        bot.send(heartbeat("someone-else"))
        assert await bot.ended() == grpc.StatusCode.INVALID_ARGUMENT
        assert "changed" in bot.details
        await bot.__aexit__()


async def test_execute_round_trip_returns_client_ack_and_records_it():
    async with running_server() as server:
        bot = await connected_bot(server)
        async with server.channel() as channel:
            ack = await stub(channel).ExecuteCommandSync(ping_request(bot.client_id, "cmd-" + bot.client_id),
                                                         metadata=server.operator_metadata(), timeout=5)
        assert ack.success and ack.command_id == "cmd-" + bot.client_id and ack.message == "done"
        await server.replica.runtime.journal.close()
        record = await CommandRecord.objects.aget(command_id=ack.command_id)
        assert record.outcome == "acked" and record.kind == "pause" and record.client_id == bot.client_id
        await bot.__aexit__()


async def test_execute_without_command_id_generates_one():
    async with running_server() as server:
        bot = await connected_bot(server)
        async with server.channel() as channel:
            ack = await stub(channel).ExecuteCommandSync(ping_request(bot.client_id),
                                                         metadata=server.operator_metadata(), timeout=5)
        assert ack.success and len(ack.command_id) == 32
        await bot.__aexit__()


async def test_unanswered_execute_times_out_with_error_ack():
    async with running_server(ack_timeout=0.5) as server:
        bot = await connected_bot(server, auto_ack=False)
        async with server.channel() as channel:
            ack = await stub(channel).ExecuteCommandSync(ping_request(bot.client_id, "c1" + bot.client_id),
                                                         metadata=server.operator_metadata(), timeout=5)
        assert not ack.success and ack.command_id == "c1" + bot.client_id and "timed out" in ack.error
        await bot.__aexit__()


async def test_execute_honours_a_shorter_caller_deadline():
    async with running_server(ack_timeout=30) as server:
        bot = await connected_bot(server, auto_ack=False)
        async with server.channel() as channel:
            started = asyncio.get_running_loop().time()
            ack = await stub(channel).ExecuteCommandSync(ping_request(bot.client_id),
                                                         metadata=server.operator_metadata(), timeout=1.0)
            assert asyncio.get_running_loop().time() - started < 2.0
        assert not ack.success and "timed out" in ack.error
        await bot.__aexit__()


async def test_send_to_offline_client_fails_clearly():
    async with running_server() as server:
        async with server.channel() as channel:
            response = await stub(channel).SendCommandToClient(ping_request("nobody-here"),
                                                               metadata=server.operator_metadata(), timeout=5)
            ack = await stub(channel).ExecuteCommandSync(ping_request("nobody-here"),
                                                         metadata=server.operator_metadata(), timeout=5)
    assert not response.success and "not connected" in response.error
    assert not ack.success and "not connected" in ack.error


async def test_send_reaches_live_stream():
    async with running_server() as server:
        bot = await connected_bot(server, auto_ack=False)
        async with server.channel() as channel:
            response = await stub(channel).SendCommandToClient(ping_request(bot.client_id, "s1" + bot.client_id),
                                                               metadata=server.operator_metadata(), timeout=5)
        assert response.success, response.error
        commands = await bot.wait_commands(1)
        assert commands[0].command_id == "s1" + bot.client_id and commands[0].pause.reason == "test"
        await bot.__aexit__()


@pytest.mark.parametrize("request_", [pb2.SendCommandRequest(command=pb2.DjangoCommand(ping=pb2.PingCommand())),
                                      pb2.SendCommandRequest(client_id="x")])
async def test_malformed_command_requests_are_invalid_argument(request_):
    async with running_server() as server:
        async with server.channel() as channel:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub(channel).ExecuteCommandSync(request_, metadata=server.operator_metadata(), timeout=5)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_second_stream_replaces_first():
    async with running_server() as server:
        first = await connected_bot(server)
        second = RawBot(server.target, first.client_id, first.api_key)
        await second.__aenter__()
        second.send(heartbeat(first.client_id))
        assert await first.ended() == grpc.StatusCode.ABORTED
        assert "replaced" in first.details
        await eventually(lambda: server.replica.runtime.bus.sessions.get(first.client_id) is not None
                         and server.replica.runtime.bus.sessions[first.client_id].epoch > 1, message="new owner")
        async with server.channel() as channel:
            ack = await stub(channel).ExecuteCommandSync(ping_request(first.client_id),
                                                         metadata=server.operator_metadata(), timeout=5)
        assert ack.success
        await first.__aexit__()
        await second.__aexit__()


async def test_heartbeat_timeout_ends_stream():
    async with running_server(heartbeat_interval=0.2, heartbeat_timeout=0.6) as server:
        bot = await connected_bot(server)
        assert await bot.ended(5) == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "heartbeat" in bot.details
        await bot.__aexit__()


async def test_server_pings_when_enabled():
    async with running_server(enable_ping=True, ping_interval=0.3) as server:
        bot = await connected_bot(server)
        commands = await bot.wait_commands(1, timeout=5)
        assert commands[0].WhichOneof("command") == "ping"
        await bot.__aexit__()


async def test_slow_reader_is_disconnected_with_resource_exhausted():
    big = pb2.SyncWalletsCommand(symbols=["S" * 32] * 1000)  # ~34 KB each (the largest allowed): fills HTTP/2 windows
    async with running_server(outbound_queue_size=4, max_message_bytes=1 << 20) as server:
        bot = await connected_bot(server, read=False)
        results = []
        async with server.channel() as channel:
            for _ in range(400):
                request = pb2.SendCommandRequest(client_id=bot.client_id,
                                                 command=pb2.DjangoCommand(sync_wallets=big))
                results.append(await stub(channel).SendCommandToClient(
                    request, metadata=server.operator_metadata(), timeout=5))
                if not results[-1].success:
                    break
        assert not results[-1].success
        await eventually(lambda: bot.client_id not in server.replica.runtime.bus.sessions, message="dropped")
        await bot.__aexit__()


async def test_client_half_close_ends_stream_normally():
    async with running_server() as server:
        bot = await connected_bot(server)
        bot.close_sending()
        assert await bot.ended() == grpc.StatusCode.OK
        await bot.__aexit__()


async def test_oversize_message_ends_only_that_stream():
    async with running_server(max_message_bytes=64 * 1024) as server:
        other = await connected_bot(server)
        bot = await connected_bot(server)
        bot.send(message(bot.client_id, log=pb2.LogEntry(level="info", message="x" * 100_000)))
        assert await bot.ended() == grpc.StatusCode.RESOURCE_EXHAUSTED
        async with server.channel() as channel:
            ack = await stub(channel).ExecuteCommandSync(ping_request(other.client_id),
                                                         metadata=server.operator_metadata(), timeout=5)
        assert ack.success
        await bot.__aexit__()
        await other.__aexit__()


async def test_commands_reach_a_new_stream_while_its_connect_bookkeeping_waits_for_the_database():
    """A slow database (here: locked by another connection) must not hold back a client's commands."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] != "django.db.backends.sqlite3":
        pytest.skip("locks the SQLite file directly")
    async with running_server(auth=False) as server:
        blocker = sqlite3.connect(database["NAME"], timeout=0, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")  # every write of the replica waits from now on
        bot = RawBot(server.target, new_id(), auto_ack=False)
        try:
            await bot.__aenter__()
            bot.send(heartbeat(bot.client_id))
            await eventually(lambda: bot.client_id in server.replica.runtime.bus.sessions, message="attached")
            async with server.channel() as channel:
                response = await stub(channel).SendCommandToClient(ping_request(bot.client_id, "locked-1"),
                                                                   metadata=server.operator_metadata(), timeout=5)
            assert response.success, response.error
            commands = await bot.wait_commands(1, timeout=2)
            assert commands[0].command_id == "locked-1"
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
            await bot.__aexit__()


def flood(target: str, client_id: str, api_key: str, count: int) -> tuple[grpc.StatusCode, str]:
    """Sends `count` heartbeats as fast as it can and returns the stream's final status.

    A synchronous channel on purpose: grpc.aio's client reports its own INTERNAL "Internal error
    from Core" instead of the server's status when a write races the end of the call
    (grpc/grpc#36066, #34148), which would hide the status this test is about.
    """
    with grpc.insecure_channel(target) as channel:
        call = pb2_grpc.CryptoStreamingServiceStub(channel).ConnectClient(
            (heartbeat(client_id) for _ in range(count)), metadata=(("x-api-key", api_key),))
        try:
            for _ in call:
                pass
        except grpc.RpcError as exc:
            return exc.code(), exc.details()
        return grpc.StatusCode.OK, ""


async def test_a_client_over_its_message_rate_is_ended_and_others_are_served():
    """Issue #11: a per-client inbound rate limit (max_messages_per_second, burst twice that)."""
    async with running_server(max_messages_per_second=50) as server:
        witness = await connected_bot(server)
        flooder_id = new_id()
        code, details = await asyncio.to_thread(flood, server.target, flooder_id,
                                                await server.make_client_key(flooder_id), 400)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, details
        assert "more than 50 messages per second" in details
        for _ in range(20):  # well within its own budget
            witness.send(heartbeat(witness.client_id))
        async with server.channel() as channel:
            reply = await stub(channel).SendCommandToClient(ping_request(witness.client_id),
                                                            metadata=server.operator_metadata(), timeout=5)
        assert reply.success and witness.status is None
        await witness.__aexit__()


async def test_rate_limit_is_a_token_bucket_with_a_burst_of_twice_the_rate():
    from apps.crypto.grpc.services.streaming.session import StreamSession

    session = StreamSession("c", 4)
    assert all(session.admit(10, 100.0) for _ in range(20))  # the burst
    assert not session.admit(10, 100.0)
    assert [session.admit(10, 100.5) for _ in range(6)] == [True] * 5 + [False]  # 5 tokens back in 0.5 s
    assert all(session.admit(0, 100.5) for _ in range(1000))  # 0: no limit
