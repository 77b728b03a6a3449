"""BotClient with receipts against a REAL replica (tests/support/grpc_server): at least once, stored once.

The server sends a MessageReceipt after each commit to a bot that registered with wants_receipts, and
stores each (client_id, message_id) once (ReceivedMessage), receipting a duplicate again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

from apps.crypto.grpc.examples.bot_client import BotClient
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import LogEntry, ReceivedMessage, Transaction
from tests.commands.bots import FAST_BACKOFF, running_bot
from tests.support.grpc_server import running_server
from tests.support.rawbot import RawBot, message
from tests.support.waiting import eventually

FIRST, SECOND = range(0, 200), range(200, 400)


def transaction(client_id: str, n: int) -> pb2.ClientMessage:
    """A transaction with its own message_id, so the test knows what the server must hold once."""
    return pb2.ClientMessage(client_id=client_id, message_id=f"tx-msg-{n}", transaction=pb2.TransactionReport(
        transaction_id=f"t-{n}", type="deposit", symbol="BTC", amount=f"{n}.5", status="done"))


def log_line(client_id: str, n: int) -> pb2.ClientMessage:
    """Logs have no natural key: only the (client_id, message_id) key keeps a resent one from being stored twice."""
    return pb2.ClientMessage(client_id=client_id, message_id=f"log-msg-{n}",
                             log=pb2.LogEntry(level="INFO", message=f"reported t-{n}"))


async def cut_the_stream(target: str, client_id: str, key: str, bot: BotClient) -> None:
    """Abruptly, from the bot's side: a newer stream for its client_id replaces it (ABORTED) mid-traffic."""
    connects = bot.connects
    async with RawBot(target, client_id, key, auto_ack=False) as interloper:
        interloper.send(message(client_id, register=pb2.ClientRegistration(client_name="interloper")))
        await eventually(lambda: bot.connects > connects, 10, "bot reconnected after losing its stream")


async def test_bot_receipts_end_to_end() -> None:
    # a slow flush keeps messages read but not yet committed when the stream is cut: their receipts are lost
    async with running_server(ingest_flush_interval=0.3) as server:
        client_id = f"rcpt-e2e-{uuid.uuid4().hex[:8]}"
        key = await server.make_client_key(client_id)
        bot = BotClient(server.target, client_id, key, receipts=True, backoff=FAST_BACKOFF)
        mine = Transaction.objects.filter(client__client_id=client_id)
        async with running_bot(bot):
            for n in FIRST:
                await bot.send(transaction(client_id, n))
            assert await bot.all_receipted(10), f"{bot.unreceipted} messages never receipted"
            assert bot.unreceipted == 0 and bot.messages_receipted >= len(FIRST)
            assert await mine.acount() == len(FIRST)  # a receipt comes only after the commit

            sent = 0

            async def traffic() -> None:
                nonlocal sent
                for n in SECOND:
                    await bot.send(transaction(client_id, n))
                    await bot.send(log_line(client_id, n))
                    sent += 1
                    if n % 10 == 0:
                        await asyncio.sleep(0.01)

            sender = asyncio.create_task(traffic())
            await eventually(lambda: sent >= len(SECOND) // 2, 10, "half the second batch sent")
            await cut_the_stream(server.target, client_id, key, bot)
            await asyncio.wait_for(sender, 15)
            assert await bot.all_receipted(10), f"{bot.unreceipted} messages never receipted after the reconnect"
            assert bot.messages_resent > 0, "the cut left nothing to resend: the test did not test the resend"

        ids = [f"t-{n}" for n in (*FIRST, *SECOND)]
        stored = Counter([t async for t in mine.values_list("transaction_id", flat=True)])
        assert sorted(stored) == sorted(ids) and set(stored.values()) == {1}
        lines = Counter([m async for m in LogEntry.objects.filter(client__client_id=client_id)
                         .values_list("message", flat=True)])
        assert lines == Counter(f"reported t-{n}" for n in SECOND)  # each exactly once despite the resend
        # log lines are keyed to be stored once; timestamped transactions need no key (one row per id)
        message_ids = [f"log-msg-{n}" for n in SECOND]
        held = ReceivedMessage.objects.filter(client_id=client_id, message_id__in=message_ids)
        assert await held.acount() == len(message_ids)
        assert not await ReceivedMessage.objects.filter(client_id=client_id, message_id__startswith="tx-msg-").aexists()
        assert bot.connects == 2
