"""BotClient with receipts on, on the wire against the in-process FakeService (which receipts nothing by
itself: each test sends the MessageReceipts the server would)."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from apps.crypto.grpc.examples.bot_client import BotClient, command_ack
from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.commands import CryptoStreamingCommandClient, ping
from tests.commands.bots import FAST_BACKOFF, demo_bot, running_bot
from tests.commands.fake_service import FakeServer, running_fake, start_fake
from tests.support.ports import free_port
from tests.support.waiting import eventually


def unique_id() -> str:
    return f"rcpt-{uuid.uuid4().hex[:8]}"


def receipting_bot(fake: FakeServer, client_id: str, key: str, **options: object) -> BotClient:
    options.setdefault("heartbeat_interval", 30.0)
    bot, _ = demo_bot(fake.target, client_id, key, receipts=True, **options)  # type: ignore[arg-type]
    return bot


async def receipt(fake: FakeServer, client_id: str, *message_ids: str) -> None:
    """What the server sends once the messages' transaction has committed."""
    await eventually(lambda: client_id in fake.service.streams, 5, "stream registered")
    fake.service.streams[client_id].put_nowait(pb2.DjangoCommand(receipt=pb2.MessageReceipt(message_ids=message_ids)))


def logs(fake: FakeServer) -> list[pb2.ClientMessage]:
    return fake.service.payloads("log")


def log_texts(fake: FakeServer) -> list[str]:
    return [m.log.message for m in logs(fake)]


async def send_logs(bot: BotClient, *texts: str) -> None:
    for text in texts:
        await bot.send(pb2.LogEntry(level="INFO", message=text))


async def test_registration_asks_for_receipts_and_every_message_carries_an_id() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        key = await fake.make_client_key(client_id)
        mine = pb2.ClientRegistration(client_name="mine", client_type="trader")
        bot = receipting_bot(fake, client_id, key, registration=mine, heartbeat_interval=0.05)
        async with running_bot(bot), CryptoStreamingCommandClient(fake.target, fake.operator_token) as operator:
            await send_logs(bot, "one")
            assert (await ping(operator, client_id)).message == "pong"
            await eventually(lambda: fake.service.payloads("heartbeat"), 5, "a heartbeat")
        register = fake.service.received[0].register
        assert register.wants_receipts and (register.client_name, register.client_type) == ("mine", "trader")
        assert not mine.wants_receipts  # the caller's registration is left alone
        ids = [m.message_id for m in fake.service.received]
        assert all(ids) and len(set(ids)) == len(ids)  # heartbeats and acks too
        assert bot.unreceipted == 1  # only the log: heartbeats and acks are not kept


async def test_without_receipts_the_registration_does_not_ask_and_nothing_is_kept() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot, _ = demo_bot(fake.target, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            await send_logs(bot, "one")
            await eventually(lambda: logs(fake), 5, "log sent")
            assert bot.unreceipted == 0 and bot.unreceipted_messages() == []
            assert await bot.all_receipted(0) is True
        assert not fake.service.received[0].register.wants_receipts


async def test_a_receipt_empties_the_outbox_and_is_neither_handled_nor_acked() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot = receipting_bot(fake, client_id, await fake.make_client_key(client_id))
        async with running_bot(bot):
            await send_logs(bot, "a", "b", "c")
            await eventually(lambda: len(logs(fake)) == 3, 5, "three logs")
            [a, b, c] = [m.message_id for m in logs(fake)]
            assert bot.unreceipted == 3 and await bot.all_receipted(0.05) is False
            await receipt(fake, client_id, b, "some-id-forgotten-long-ago")
            await eventually(lambda: bot.unreceipted == 2, 5, "b receipted")
            assert [m.log.message for m in bot.unreceipted_messages()] == ["a", "c"]
            await receipt(fake, client_id, a, c, b)  # b again: a duplicate's receipt
            assert await bot.all_receipted(5) is True
            await asyncio.sleep(0.05)
        assert fake.service.payloads("command_ack") == []
        assert bot.commands_handled == 0 and bot.commands_failed == 0
        assert (bot.receipts_received, bot.messages_receipted) == (2, 3)


async def test_after_a_reconnect_the_unreceipted_messages_come_first_with_the_same_ids() -> None:
    port = free_port()
    fake = await start_fake(port=port)
    client_id = unique_id()
    bot = receipting_bot(fake, client_id, await fake.make_client_key(client_id), backoff=FAST_BACKOFF)
    async with running_bot(bot):
        await send_logs(bot, "a", "b", "c", "d")
        await eventually(lambda: len(logs(fake)) == 4, 5, "four logs")
        first = {m.log.message: m.message_id for m in logs(fake)}
        await receipt(fake, client_id, first["a"], first["c"])
        await eventually(lambda: bot.unreceipted == 2, 5, "a and c receipted")
        await fake.server.stop(0)
        await eventually(lambda: not bot.connected.is_set(), 5, "bot noticed the replica went away")
        await send_logs(bot, "e", "f")  # while disconnected: queued, never written yet
        fake = await start_fake(port=port, store=fake.store)
        try:
            await asyncio.wait_for(bot.connected.wait(), 5)
            await send_logs(bot, "g")
            await eventually(lambda: len(logs(fake)) == 5, 5, "resent and new logs")
            kinds = [m.WhichOneof("payload") for m in fake.service.received]
            assert kinds[:6] == ["register", "log", "log", "log", "log", "log"]
            assert log_texts(fake) == ["b", "d", "e", "f", "g"]  # the outbox in order, then the new one
            again = {m.log.message: m.message_id for m in logs(fake)}
            assert again["b"] == first["b"] and again["d"] == first["d"]
            assert bot.messages_resent == 2 and bot.unreceipted == 5
            await receipt(fake, client_id, *again.values())
            assert await bot.all_receipted(5) is True
        finally:
            await bot.stop()
            await fake.server.stop(0)


async def test_a_full_outbox_holds_send_back_until_a_receipt_makes_room() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot = receipting_bot(fake, client_id, await fake.make_client_key(client_id), outbox_limit=3)
        async with running_bot(bot):
            await send_logs(bot, "a", "b", "c")
            blocked = asyncio.create_task(send_logs(bot, "d"))
            await eventually(lambda: len(logs(fake)) == 3, 5, "three logs")
            await asyncio.sleep(0.05)
            assert not blocked.done() and bot.unreceipted == 3
            with pytest.raises(TimeoutError):
                await bot.send(pb2.LogEntry(message="impatient"), timeout=0.05)
            await receipt(fake, client_id, logs(fake)[0].message_id)
            await asyncio.wait_for(blocked, 5)
            await eventually(lambda: len(logs(fake)) == 4, 5, "d sent")
        assert log_texts(fake) == ["a", "b", "c", "d"]  # "impatient" was neither kept nor sent
        assert [m.log.message for m in bot.unreceipted_messages()] == ["b", "c", "d"]


async def test_stop_releases_a_send_waiting_for_room_and_keeps_the_rest_readable() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        bot = receipting_bot(fake, client_id, await fake.make_client_key(client_id), outbox_limit=1)
        async with running_bot(bot):
            await send_logs(bot, "kept")
            blocked = asyncio.create_task(send_logs(bot, "never"))
            await asyncio.sleep(0.05)
            await bot.stop()
            with pytest.raises(RuntimeError):
                await asyncio.wait_for(blocked, 2)
            assert await bot.all_receipted(0) is False
        assert [m.log.message for m in bot.unreceipted_messages()] == ["kept"]


async def test_a_handler_sending_more_than_the_outbox_holds_finishes_because_receipts_keep_flowing() -> None:
    """The handler's send() waits for room; the receipts that make it are read while the handler runs."""
    async with running_fake() as fake, CryptoStreamingCommandClient(fake.target, fake.operator_token) as operator:
        client_id = unique_id()
        bot = receipting_bot(fake, client_id, await fake.make_client_key(client_id), outbox_limit=2,
                             handler_timeout=5.0)

        async def chatty(command: pb2.DjangoCommand) -> common_pb2.CommandAck:
            for n in range(10):
                await bot.send(pb2.LogEntry(message=f"step {n}"))
            return command_ack(message="done")

        async def receipt_every_log() -> None:
            done = 0
            while True:
                await eventually(lambda: len(logs(fake)) > done, 10, "another log")
                fresh = logs(fake)[done:]
                done += len(fresh)
                await receipt(fake, client_id, *(m.message_id for m in fresh))

        bot.handlers["ping"] = chatty
        async with running_bot(bot):
            receipter = asyncio.create_task(receipt_every_log())
            try:
                ack = await ping(operator, client_id)
            finally:
                receipter.cancel()
        assert ack.success and ack.message == "done"
        assert log_texts(fake) == [f"step {n}" for n in range(10)]
        kinds = [m.WhichOneof("payload") for m in fake.service.received]
        assert kinds.index("command_ack") > max(i for i, kind in enumerate(kinds) if kind == "log")


async def test_messages_left_at_stop_can_be_sent_again_by_the_next_run_with_their_ids() -> None:
    async with running_fake() as fake:
        client_id = unique_id()
        key = await fake.make_client_key(client_id)
        first = receipting_bot(fake, client_id, key)
        async with running_bot(first):
            await send_logs(first, "a", "b")
            await eventually(lambda: len(logs(fake)) == 2, 5, "two logs")
            await receipt(fake, client_id, logs(fake)[0].message_id)
            await eventually(lambda: first.unreceipted == 1, 5, "a receipted")
        saved = first.unreceipted_messages()
        second = receipting_bot(fake, client_id, key)
        async with running_bot(second):
            for message in saved:
                await second.send(message)
            await eventually(lambda: len(logs(fake)) == 3, 5, "b sent again")
        assert [(m.log.message, m.message_id) for m in logs(fake)[1:]] == [("b", saved[0].message_id)] * 2
        assert second.unreceipted == 1
