"""Bot-side message helpers and the outbox ordering, without a network."""

from __future__ import annotations

import asyncio

import pytest

from apps.crypto.grpc.examples.bot_client import (
    ExecutedCommands,
    Outbox,
    command_ack,
    complete_ack,
    stamp_message,
    wrap_payload,
)
from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2


def test_bare_payloads_are_wrapped_and_stamped() -> None:
    message = wrap_payload("bot-1", pb2.WalletUpdate(symbol="BTC", balance_available="1"))
    assert message.WhichOneof("payload") == "wallet_update"
    assert message.wallet_update.symbol == "BTC"
    assert message.client_id == "bot-1" and len(message.message_id) == 32 and message.HasField("timestamp")


def test_client_messages_are_copied_and_completed() -> None:
    original = pb2.ClientMessage(message_id="m1", log=pb2.LogEntry(level="INFO", message="hi"))
    message = wrap_payload("bot-1", original)
    assert message.message_id == "m1" and message.client_id == "bot-1"
    assert original.client_id == ""  # the caller's message is left alone


def test_a_message_for_another_client_or_without_payload_is_refused() -> None:
    with pytest.raises(ValueError, match="bot-2"):
        wrap_payload("bot-1", pb2.ClientMessage(client_id="bot-2", heartbeat=pb2.HeartbeatUpdate()))
    with pytest.raises(ValueError, match="no payload"):
        stamp_message("bot-1", pb2.ClientMessage())


def test_non_payload_messages_are_a_type_error() -> None:
    with pytest.raises(TypeError, match="PingCommand"):
        wrap_payload("bot-1", pb2.PingCommand())


def test_complete_ack_answers_the_command() -> None:
    command = pb2.DjangoCommand(command_id="c1", ping=pb2.PingCommand())
    ack = command_ack(message="pong", status=common_pb2.CLIENT_STATUS_ACTIVE)
    ack.command_id = "wrong"
    filled = complete_ack(ack, command)
    assert filled.command_id == "c1" and filled.HasField("timestamp") and filled.message == "pong"
    assert ack.command_id == "wrong"


def test_error_text_is_bounded() -> None:
    assert len(command_ack(False, error="x" * 5000).error) == 1000


def msg(text: str) -> pb2.ClientMessage:
    return stamp_message("b", pb2.ClientMessage(log=pb2.LogEntry(message=text)))


async def test_outbox_puts_control_messages_first_and_keeps_unsent_ones() -> None:
    outbox = Outbox(limit=10)
    await outbox.put(msg("app"))
    outbox.push_control(msg("heartbeat"))
    first = await outbox.next()
    assert first is not None and first.log.message == "heartbeat"
    outbox.sent()
    second = await outbox.next()
    assert second is not None and second.log.message == "app"
    again = await outbox.next()  # write failed: not marked sent, so it is offered again
    assert again is second
    outbox.sent()
    assert len(outbox) == 0


async def test_outbox_waits_for_messages_and_ends_when_closed_and_empty() -> None:
    outbox = Outbox(limit=10)
    waiter = asyncio.create_task(outbox.next())
    await asyncio.sleep(0.01)
    assert not waiter.done()
    outbox.push_control(msg("late"))
    assert (await asyncio.wait_for(waiter, 1)).log.message == "late"
    outbox.sent()
    outbox.close()
    assert await asyncio.wait_for(outbox.next(), 1) is None


async def test_outbox_flushes_before_ending_when_closed() -> None:
    outbox = Outbox(limit=10)
    await outbox.put(msg("pending"))
    outbox.close()
    assert (await outbox.next()).log.message == "pending"
    outbox.sent()
    assert await outbox.next() is None


# ---------------------------------------------------------------------------- executed commands


def test_executed_commands_forget_the_least_recently_seen_first() -> None:
    executed = ExecutedCommands(limit=3)
    for n in range(1, 4):
        executed.remember(f"c{n}", command_ack(message=f"ack {n}"))
    assert executed.ack_for("c1") is not None  # seen again: now the most recent
    executed.remember("c4", command_ack())
    assert "c2" not in executed and all(f"c{n}" in executed for n in (1, 3, 4))
    for n in range(100):
        executed.remember(f"x{n}", command_ack())
    assert len(executed) == 3 and executed.ack_for("c1") is None
    assert executed.ack_for("x99") == command_ack()


def test_executed_commands_keep_nothing_for_an_empty_id_or_a_zero_limit() -> None:
    executed = ExecutedCommands(limit=5)
    executed.remember("", command_ack())
    assert len(executed) == 0
    off = ExecutedCommands(limit=0)
    off.remember("c1", command_ack())
    assert len(off) == 0 and off.ack_for("c1") is None
    with pytest.raises(ValueError):
        ExecutedCommands(limit=-1)
