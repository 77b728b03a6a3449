"""BotClient on the wire, against the in-process FakeService (real gRPC, real Authenticator)."""

from __future__ import annotations

import asyncio
import uuid

import grpc
import pytest

from apps.crypto.grpc.examples.bot_client import (
    REMEMBER_COMMANDS,
    BotClient,
    BotRejected,
    CommandHandler,
    command_ack,
)
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
from tests.support.ports import free_port
from tests.support.waiting import eventually

from .bots import FAST_BACKOFF, demo_bot, running_bot
from .fake_service import FakeServer, running_fake, start_fake

ACTIVE, PAUSED = common_pb2.CLIENT_STATUS_ACTIVE, common_pb2.CLIENT_STATUS_PAUSED


def unique_id() -> str:
    return f"bot-{uuid.uuid4().hex[:8]}"


def operator(fake: FakeServer) -> CryptoStreamingCommandClient:
    return CryptoStreamingCommandClient(fake.target, fake.operator_token, ack_timeout=5.0)


async def test_registers_first_with_the_api_key_then_heartbeats() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        key = await fake.make_client_key(client_id)
        bot, _ = demo_bot(fake.target, client_id, key, heartbeat_interval=0.05)
        async with running_bot(bot):
            await eventually(lambda: len(fake.service.payloads("heartbeat")) >= 2, 5, "two heartbeats")
        first = fake.service.received[0]
        assert first.WhichOneof("payload") == "register" and first.client_id == client_id
        assert first.message_id and first.HasField("timestamp")
        assert fake.service.metadata[0]["x-api-key"] == key
        assert bot.connects == 1


async def test_every_command_kind_is_answered_through_the_handler_table() -> None:
    async with running_fake() as fake, operator(fake) as client:
        client_id = unique_id()
        bot, demo = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            ack = await pause(client, client_id, reason="maintenance")
            assert (ack.success, ack.current_status, demo.paused) == (True, PAUSED, True)
            assert "maintenance" in ack.message and ack.command_id and ack.HasField("timestamp")
            ack = await request_status(client, client_id, include_stats=True)
            assert ack.success and ack.current_status == PAUSED and "wallets=" in ack.message
            ack = await resume(client, client_id, message="go")
            assert (ack.success, ack.current_status, demo.paused) == (True, ACTIVE, False)
            ack = await ping(client, client_id, sequence=3)
            assert ack.success and ack.message == "pong"
            ack = await sync_wallets(client, client_id, symbols=["BTC", "ETH"])
            assert ack.success and ack.message == "synced 2 wallets"
            updates = fake.service.payloads("wallet_update")
            assert [m.wallet_update.symbol for m in updates] == ["BTC", "ETH"]
            assert all(m.client_id == client_id and m.message_id for m in updates)
        assert bot.commands_handled == 5 and bot.commands_failed == 0


async def test_send_without_wait_is_delivered_and_the_ack_still_flows() -> None:
    async with running_fake() as fake, operator(fake) as client:
        client_id = unique_id()
        bot, demo = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            command = build_ping(9)
            response = await client.send(client_id, command)
            assert response.success and len(response.command_id) == 32  # named by the server
            assert command.command_id == ""  # the caller's object is never changed
            await eventually(lambda: any(m.command_ack.command_id == response.command_id
                                         for m in fake.service.payloads("command_ack")), 5, "ack")
        not_connected = await client.send(unique_id(), build_ping())
        assert not not_connected.success and "not connected" in not_connected.error


async def test_unknown_kind_failing_and_slow_handlers_give_failed_acks() -> None:
    async def broken(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        raise RuntimeError("exchange offline")

    async def slow(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        await asyncio.sleep(10)
        return command_ack()

    async def wrong_type(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        return None  # type: ignore[return-value]

    handlers = {"pause": broken, "resume": slow, "ping": wrong_type}
    async with running_fake() as fake, operator(fake) as client:
        client_id = unique_id()
        bot = BotClient(fake.target, client_id, await fake.make_client_key(client_id), handlers=handlers,
                        handler_timeout=0.2)
        async with running_bot(bot):
            ack = await pause(client, client_id)
            assert not ack.success and ack.error == "RuntimeError: exchange offline"
            ack = await resume(client, client_id)
            assert not ack.success and "timed out after 0.2s" in ack.error
            ack = await ping(client, client_id)
            assert not ack.success and "NoneType" in ack.error
            ack = await request_status(client, client_id)
            assert not ack.success and "no handler" in ack.error and "request_status" in ack.error
            ack = await ping(client, client_id)  # the bot lives on after failures
            assert ack.command_id
        assert bot.commands_failed == 5


async def test_an_ack_never_overtakes_what_its_handler_sent() -> None:
    async with running_fake() as fake, operator(fake) as client:
        client_id = unique_id()
        bot = BotClient(fake.target, client_id, await fake.make_client_key(client_id), outbound_limit=5)

        async def chatty(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
            for n in range(50):
                await bot.send(pb2.LogEntry(message=f"step {n}"))
            return command_ack(message="done")

        bot.handlers["ping"] = chatty
        async with running_bot(bot):
            assert (await ping(client, client_id)).message == "done"
            kinds = [m.WhichOneof("payload") for m in fake.service.received]
        assert kinds.count("log") == 50 and kinds.index("command_ack") > max(
            i for i, kind in enumerate(kinds) if kind == "log")


async def test_app_messages_are_sent_in_order() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            for n in range(20):
                await bot.send(pb2.LogEntry(level="INFO", message=f"line {n}"))
            await bot.send(pb2.StatusUpdate(status=ACTIVE, details="ready"))
            await eventually(lambda: fake.service.payloads("status"), 5, "status update")
        assert [m.log.message for m in fake.service.payloads("log")] == [f"line {n}" for n in range(20)]


async def test_stop_flushes_and_half_closes_cleanly() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot) as task:
            await bot.send(pb2.LogEntry(message="last words"))
            await bot.stop()
            assert task.done() and task.exception() is None
        assert fake.service.payloads("log")[-1].log.message == "last words"
        await eventually(lambda: fake.service.stream_ends == ["ok"], 2, "server saw end of stream")
        assert not bot.connected.is_set()
        with pytest.raises(RuntimeError):
            await bot.send(pb2.LogEntry(message="too late"))


@pytest.mark.parametrize(("key_for", "code"), [("other", grpc.StatusCode.PERMISSION_DENIED),
                                               ("nobody", grpc.StatusCode.UNAUTHENTICATED),
                                               ("none", grpc.StatusCode.UNAUTHENTICATED)])
async def test_rejected_bots_stop_retrying_with_a_clear_error(key_for: str, code: grpc.StatusCode) -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        keys = {"other": await fake.make_client_key(unique_id()), "nobody": "ck_unknown", "none": None}
        bot, _ = demo_bot(fake.target, client_id, keys[key_for])
        with pytest.raises(BotRejected) as err:
            await asyncio.wait_for(bot.run(), 5)
        assert err.value.code == code and client_id in str(err.value)
        assert bot.connects == 0 and len(fake.service.metadata) == 1


async def test_reconnects_after_the_server_restarts() -> None:
    port = free_port()
    fake = await start_fake(port=port)
    client_id = unique_id()
    key = await fake.make_client_key(client_id)
    bot, _ = demo_bot(fake.target, client_id, key)
    async with running_bot(bot):
        await fake.server.stop(0)
        await eventually(lambda: not bot.connected.is_set(), 5, "bot noticed the server went away")
        await asyncio.sleep(0.3)  # a few failed attempts while the port is closed
        fake = await start_fake(port=port, store=fake.store)
        try:
            await asyncio.wait_for(bot.connected.wait(), 5)
            assert bot.connects == 2
            async with operator(fake) as client:
                assert (await ping(client, client_id)).message == "pong"
        finally:
            await bot.stop()
            await fake.server.stop(0)


async def test_without_server_headers_the_first_command_marks_the_bot_connected() -> None:
    async with running_fake(send_headers=False) as fake, operator(fake) as client:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot, connect_timeout=None):
            await eventually(lambda: client_id in fake.service.streams, 5, "stream open")
            assert not bot.connected.is_set()
            assert (await ping(client, client_id)).success
            assert bot.connected.is_set() and bot.connects == 1


# ---------------------------------------------------------------------------- re-delivered commands (issue 11, 5)


def counting_ping(calls: list[str]) -> CommandHandler:
    async def on_ping(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        calls.append(command.command_id)
        return command_ack(message=f"pong {len(calls)}", status=ACTIVE)
    return on_ping


async def deliver(fake: FakeServer, client_id: str, command_id: str, retry: bool = False) -> None:
    """Put a command straight into the bot's stream, as the server does (and as it re-sends after a crash)."""
    await eventually(lambda: client_id in fake.service.streams, 5, "stream registered")
    fake.service.streams[client_id].put_nowait(
        pb2.DjangoCommand(command_id=command_id, retry=retry, ping=pb2.PingCommand(sequence=1)))


def acks_for(fake: FakeServer, command_id: str) -> list[common_pb2.CommandAck]:
    return [m.command_ack for m in fake.service.payloads("command_ack") if m.command_ack.command_id == command_id]


async def test_a_command_delivered_twice_runs_once_and_is_acked_twice_with_the_same_ack() -> None:
    calls: list[str] = []
    async with running_fake() as fake:
        client_id = unique_id()
        bot = BotClient(fake.target, client_id, await fake.make_client_key(client_id),
                        handlers={"ping": counting_ping(calls)})
        async with running_bot(bot):
            await deliver(fake, client_id, "cmd-1")
            await eventually(lambda: len(acks_for(fake, "cmd-1")) == 1, 5, "first ack")
            await deliver(fake, client_id, "cmd-1", retry=True)  # the server's re-send after a lost replica
            await deliver(fake, client_id, "cmd-1")  # the flag does not matter: the id does
            await eventually(lambda: len(acks_for(fake, "cmd-1")) == 3, 5, "acked again")
        first, *again = acks_for(fake, "cmd-1")
        assert calls == ["cmd-1"] and first.success and first.message == "pong 1"
        assert all(ack == first for ack in again)  # the very same ack, timestamp included
        assert (bot.commands_handled, bot.commands_repeated) == (1, 2)


async def test_a_retry_on_the_new_stream_after_a_lost_replica_is_acked_again_without_running() -> None:
    """Issue 11 finding 5: executed on the stream of a replica that died, re-sent with retry=True elsewhere."""
    calls: list[str] = []
    port = free_port()
    fake = await start_fake(port=port)
    client_id = unique_id()
    bot = BotClient(fake.target, client_id, await fake.make_client_key(client_id),
                    handlers={"ping": counting_ping(calls)}, backoff=FAST_BACKOFF)
    async with running_bot(bot):
        await deliver(fake, client_id, "cmd-lost")
        await eventually(lambda: bool(acks_for(fake, "cmd-lost")), 5, "executed on the first replica")
        [first] = acks_for(fake, "cmd-lost")
        await fake.server.stop(0)
        await eventually(lambda: not bot.connected.is_set(), 5, "bot noticed the replica went away")
        fake = await start_fake(port=port, store=fake.store)
        try:
            await asyncio.wait_for(bot.connected.wait(), 5)
            await deliver(fake, client_id, "cmd-lost", retry=True)
            await deliver(fake, client_id, "cmd-new", retry=True)  # a retry the bot never saw runs normally
            await eventually(lambda: bool(acks_for(fake, "cmd-new")), 5, "both answered on the new stream")
            assert acks_for(fake, "cmd-lost") == [first]
        finally:
            await bot.stop()
            await fake.server.stop(0)
    assert calls == ["cmd-lost", "cmd-new"] and bot.commands_repeated == 1


async def test_the_memory_of_executed_commands_is_bounded() -> None:
    calls: list[str] = []
    async with running_fake() as fake:
        client_id = unique_id()
        bot = BotClient(fake.target, client_id, await fake.make_client_key(client_id),
                        handlers={"ping": counting_ping(calls)}, remember_commands=2)
        async with running_bot(bot):
            for command_id in ("c1", "c2", "c3", "c1", "c3"):  # c1 is forgotten by then, c3 is not
                await deliver(fake, client_id, command_id, retry=True)
            await eventually(lambda: len(fake.service.payloads("command_ack")) == 5, 5, "five acks")
        assert calls == ["c1", "c2", "c3", "c1"]
        assert len(bot.executed) == 2 and "c1" in bot.executed and "c3" in bot.executed
        assert bot.commands_repeated == 1


def test_bots_remember_ten_thousand_commands_by_default() -> None:
    assert BotClient("127.0.0.1:1", "bot-x").executed.limit == REMEMBER_COMMANDS == 10_000
    with pytest.raises(ValueError):
        BotClient("127.0.0.1:1", "bot-x", remember_commands=-1)


async def test_run_only_once_and_stop_before_run() -> None:
    bot = BotClient("127.0.0.1:1", "bot-x")
    await bot.stop()
    await asyncio.wait_for(bot.run(), 1)  # returns at once: already stopped
    with pytest.raises(RuntimeError):
        await bot.run()
