"""The operator-side client (async and blocking) and `manage.py send_command`, against FakeService."""

from __future__ import annotations

import asyncio
import threading
import uuid
from io import StringIO

import grpc
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.commands import (
    CommandClientError,
    build_pause,
    CryptoStreamingCommandClient,
    build_ping,
    connect_sync,
    default_target,
    default_token,
    ping,
)
from apps.crypto.operator_commands import CommandRequest, run_commands
from tests.support.ports import free_port
from tests.support.waiting import eventually

from .bots import demo_bot, running_bot
from .fake_service import running_fake


def unique_id() -> str:
    return f"bot-{uuid.uuid4().hex[:8]}"


def send_command(*args: str) -> str:
    out = StringIO()
    call_command("send_command", *args, stdout=out)
    return out.getvalue().strip()


async def test_wrong_or_missing_token_is_a_clear_unauthenticated_error() -> None:
    async with running_fake() as fake:
        for token in ("wrong", ""):
            async with CryptoStreamingCommandClient(fake.target, token) as client:
                with pytest.raises(CommandClientError) as err:
                    await ping(client, "bot-x")
            assert err.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert "operator token" in err.value.details


async def test_unreachable_server_is_unavailable() -> None:
    async with CryptoStreamingCommandClient(f"127.0.0.1:{free_port()}", "t", timeout=2.0) as client:
        with pytest.raises(CommandClientError) as err:
            await client.send("bot-x", build_ping())
    assert err.value.code == grpc.StatusCode.UNAVAILABLE and "cannot reach" in err.value.details


async def test_execute_timeout_comes_back_as_a_failed_ack_before_the_deadline() -> None:
    async def never(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    async with running_fake() as fake, CryptoStreamingCommandClient(fake.target, fake.operator_token,
                                                                     ack_margin=0.5) as client:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id), handlers={"ping": never},
                          handler_timeout=None)
        async with running_bot(bot):
            ack = await client.execute(client_id, build_ping(), timeout=0.5)
        assert not ack.success and "timed out" in ack.error


async def test_the_same_command_object_sent_twice_is_never_changed_and_each_send_gets_its_own_id() -> None:
    """Issue 11 finding 6: stamp() wrote the id into the caller's command, so a retry reused it."""
    async with running_fake() as fake, CryptoStreamingCommandClient(fake.target, fake.operator_token,
                                                                     ack_timeout=5.0) as client:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            command = build_pause("twice")
            before = command.SerializeToString()
            sent = [await client.send(client_id, command) for _ in range(2)]
            acks = [await client.execute(client_id, command) for _ in range(2)]
            assert command.SerializeToString() == before and command.command_id == ""
            ids = [r.command_id for r in sent] + [a.command_id for a in acks]
            assert all(sent_ok.success for sent_ok in sent) and all(ack.success for ack in acks)
            assert all(ids) and len(set(ids)) == 4  # four sends, four server-generated ids
            assert [c.command_id for c in fake.service.commands_in] == ["", "", "", ""]  # left to the server
            await eventually(lambda: bot.commands_handled == 4, 5, "all four handled")
            acked = {m.command_ack.command_id for m in fake.service.payloads("command_ack")}
            assert acked == set(ids)


async def test_a_caller_chosen_id_is_sent_as_is_and_reported_even_by_a_server_that_does_not_name_it() -> None:
    async with running_fake(name_responses=False) as fake, CryptoStreamingCommandClient(
            fake.target, fake.operator_token) as client:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            command = pb2.DjangoCommand(command_id="operator-1", ping=pb2.PingCommand(sequence=1))
            before = command.SerializeToString()
            response = await client.send(client_id, command)
            assert response.success and response.command_id == "operator-1"
            assert command.SerializeToString() == before and not command.HasField("timestamp")
            assert fake.service.commands_in[0].command_id == "operator-1"
            assert fake.service.commands_in[0].HasField("timestamp")  # stamped on the copy


async def test_sync_client_never_changes_the_callers_command() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            command = build_ping(5)

            def twice() -> list[str]:
                with connect_sync(fake.target, fake.operator_token, ack_timeout=5.0) as client:
                    return [client.execute(client_id, command).command_id, client.send(client_id, command).command_id]

            ids = await asyncio.to_thread(twice)
        assert all(ids) and ids[0] != ids[1] and command.command_id == "" and not command.HasField("timestamp")


async def test_operator_commands_report_the_server_generated_id() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            requests = [CommandRequest(client_id, "ping", wait=False), CommandRequest(client_id, "ping", wait=True)]
            delivered, acked = await run_commands(requests, target=fake.target, token=fake.operator_token)
            assert not isinstance(delivered, CommandClientError) and not isinstance(acked, CommandClientError)
            assert delivered.success and acked.success
            ids = {delivered.command_id, acked.command_id}
            assert "" not in ids and len(ids) == 2
            await eventually(lambda: {m.command_ack.command_id for m in fake.service.payloads("command_ack")} == ids,
                             5, "the bot acked both ids")


def test_defaults_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRYPTO_OPERATOR_TOKEN", "from-env")
    assert default_token() == "from-env"
    assert default_target()  # CRYPTO_GRPC_TARGET or localhost:50051
    client = CryptoStreamingCommandClient.from_env(target="h:1", token="explicit")
    assert client.target == "h:1" and client._metadata == (("authorization", "Bearer explicit"),)


async def test_sync_client_works_from_a_plain_thread_and_from_a_loop_thread() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            def blocking_calls() -> list[str]:
                with connect_sync(fake.target, fake.operator_token, ack_timeout=5.0) as client:
                    acks = [client.execute(client_id, build_ping(n)).message for n in range(3)]
                    acks.append(str(client.send(client_id, build_ping()).success))
                return acks

            assert await asyncio.to_thread(blocking_calls) == ["pong", "pong", "pong", "True"]

            result: list[str] = []

            def thread_with_its_own_running_loop() -> None:
                async def inside() -> None:
                    result.extend(blocking_calls())  # blocks this loop, but works
                asyncio.run(inside())

            thread = threading.Thread(target=thread_with_its_own_running_loop)
            thread.start()
            await asyncio.to_thread(thread.join, 10)
            assert result == ["pong", "pong", "pong", "True"]


def test_sync_client_close_is_idempotent_and_unused_client_is_cheap() -> None:
    client = connect_sync("127.0.0.1:1", "t")
    client.close()
    client.close()


# ---------------------------------------------------------------------------- manage.py send_command


async def test_send_command_waits_for_the_ack() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, demo = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            base = ("--target", fake.target, "--token", fake.operator_token)
            out = await asyncio.to_thread(send_command, client_id, "pause", "--wait", "--reason", "r1", *base)
            assert out.startswith("ack ") and "success=True" in out and "status=CLIENT_STATUS_PAUSED " in out
            assert demo.paused
            out = await asyncio.to_thread(send_command, client_id, "sync_wallets", "--symbols", "BTC,ETH", "USDT",
                                          "--wait", *base)
            assert "synced 3 wallets" in out
            out = await asyncio.to_thread(send_command, client_id, "ping", "--sequence", "4", *base)
            assert out.startswith("sent ") and "success=True" in out
            named = fake.service.last_command_id  # generated by the server, returned in the response
            assert named and f"command_id={named} " in out
            with pytest.raises(CommandError, match="unknown symbols"):
                await asyncio.to_thread(send_command, client_id, "sync_wallets", "--symbols", "DOGE", "--wait", *base)


async def test_send_command_to_a_disconnected_client_fails() -> None:
    async with running_fake() as fake:
        base = ("--target", fake.target, "--token", fake.operator_token)
        with pytest.raises(CommandError, match="not delivered"):
            await asyncio.to_thread(send_command, unique_id(), "ping", *base)
        with pytest.raises(CommandError, match="UNAUTHENTICATED"):
            await asyncio.to_thread(send_command, unique_id(), "ping", "--target", fake.target, "--token", "bad")


def test_send_command_unreachable_server() -> None:
    with pytest.raises(CommandError, match="UNAVAILABLE"):
        send_command("bot-x", "ping", "--target", f"127.0.0.1:{free_port()}", "--token", "t", "--timeout", "2")


@pytest.mark.parametrize(("args", "message"), [
    (("bot-x", "ping", "--reason", "r"), "--reason does not apply to ping"),
    (("bot-x", "pause", "--symbols", "BTC"), "--symbols does not apply to pause"),
    (("", "ping"), "client_id must not be empty"),
])
def test_send_command_rejects_options_that_do_not_apply(args: tuple[str, ...], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        send_command(*args)


def test_send_command_rejects_unknown_kinds() -> None:
    with pytest.raises(CommandError):
        send_command("bot-x", "explode")
