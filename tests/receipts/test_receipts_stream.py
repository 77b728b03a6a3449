"""Receipts over a real stream: opt-in, after the commit, batched, once per (client_id, message_id)."""

from __future__ import annotations

import uuid

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.handlers.dispatch import MISSING_MESSAGE_ID
from apps.crypto.models import ReceivedMessage, RejectedMessage, Transaction
from tests.service.test_streaming import connected_bot, ping_request
from tests.support.grpc_server import running_server, stub
from tests.support.rawbot import message
from tests.support.waiting import eventually


def report(client_id: str, n: int, message_id: str = "") -> pb2.ClientMessage:
    msg = message(client_id, transaction=pb2.TransactionReport(
        transaction_id=f"t{n}", type="deposit", symbol="BTC", amount="1", status="pending"))
    msg.message_id = message_id or f"m{n}"
    return msg


async def test_a_receipting_bot_gets_batched_receipts_and_a_resend_is_stored_once():
    async with running_server() as server:
        bot = await connected_bot(server)
        cid = bot.client_id
        register = message(cid, register=pb2.ClientRegistration(client_name="r", wants_receipts=True))
        bot.send(register)
        for n in range(200):
            bot.send(report(cid, n))
        expected = {register.message_id, *(f"m{n}" for n in range(200))}
        await eventually(lambda: expected <= set(bot.receipted()), message="every message receipted")
        assert all(r.command_id == "" for r in bot.receipts)
        assert len(bot.receipts) < 100, len(bot.receipts)  # batched, never one per message
        assert await Transaction.objects.filter(client__client_id=cid).acount() == 200
        # the registration is keyed (stored once); timestamped transactions need no key
        assert await ReceivedMessage.objects.filter(client_id=cid).acount() == 1

        before = len(bot.receipted())
        for n in range(150, 200):  # as after a reconnect: what may not have been receipted, again
            bot.send(report(cid, n))
        await eventually(lambda: len(bot.receipted()) >= before + 50, message="resends receipted")
        assert await Transaction.objects.filter(client__client_id=cid).acount() == 200
        assert await RejectedMessage.objects.filter(client_id=cid).acount() == 0

        # an ack goes to the bus, not the buffer; it is receipted all the same
        async with server.channel() as channel:
            ack = await stub(channel).ExecuteCommandSync(ping_request(cid), metadata=server.operator_metadata(),
                                                         timeout=5)
        assert ack.success
        await eventually(lambda: len(bot.receipted()) >= before + 51, message="the ack receipted")
        await bot.__aexit__()


async def test_a_receipting_bot_must_name_its_messages():
    async with running_server() as server:
        bot = await connected_bot(server)
        cid = bot.client_id
        bot.send(message(cid, register=pb2.ClientRegistration(wants_receipts=True)))
        bot.send(report(cid, 1, message_id="x"))
        nameless = report(cid, 2)
        nameless.message_id = ""
        bot.send(nameless)
        bot.send(report(cid, 3))
        await eventually(lambda: "m3" in bot.receipted(), message="the stream goes on")
        assert "" not in bot.receipted()
        rejected = await RejectedMessage.objects.aget(client_id=cid)
        assert rejected.reason == MISSING_MESSAGE_ID
        assert not await Transaction.objects.filter(client__client_id=cid, transaction_id="t2").aexists()
        await bot.__aexit__()


async def test_a_bot_that_did_not_ask_gets_no_receipts_and_no_dedupe():
    async with running_server() as server:
        bot = await connected_bot(server)
        cid = bot.client_id
        bot.send(message(cid, register=pb2.ClientRegistration(client_name="old")))
        same = f"same-{uuid.uuid4()}"
        for n in range(3):
            bot.send(report(cid, n, message_id=same))
        await eventually(lambda: Transaction.objects.filter(client__client_id=cid).acount(), message="stored")
        async with server.channel() as channel:  # a command round trip: everything before it was handled
            await stub(channel).ExecuteCommandSync(ping_request(cid), metadata=server.operator_metadata(), timeout=5)
        await eventually(lambda: _count(cid, 3), message="all three stored")
        assert bot.receipts == []
        assert not await ReceivedMessage.objects.filter(client_id=cid).aexists()
        await bot.__aexit__()


async def _count(cid: str, n: int) -> bool:
    return await Transaction.objects.filter(client__client_id=cid).acount() == n


async def test_a_timestamp_out_of_range_is_refused_with_its_reason_and_the_stream_goes_on():
    async with running_server() as server:
        bot = await connected_bot(server)
        cid = bot.client_id
        bad = report(cid, 1)
        bad.timestamp.seconds = 10**13  # year 318,857: no datetime holds it
        bot.send(bad)
        zero = report(cid, 2)
        zero.timestamp.seconds, zero.timestamp.nanos = 0, 0  # all-zero counts as unset
        bot.send(zero)
        await eventually(lambda: _count(cid, 1), message="the zero-timestamp report stored")
        rejected = await RejectedMessage.objects.aget(client_id=cid)
        assert rejected.reason.startswith("timestamp: timestamp out of range: seconds=10000000000000")
        async with server.channel() as channel:  # the stream is still served
            ack = await stub(channel).ExecuteCommandSync(ping_request(cid), metadata=server.operator_metadata(),
                                                         timeout=5)
        assert ack.success
        await bot.__aexit__()
