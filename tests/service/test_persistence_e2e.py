"""Every payload sent over a real stream lands in the database; bad ones are recorded, not fatal."""

from __future__ import annotations

from decimal import Decimal

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, ErrorReport, LogEntry, RejectedMessage, StatusChange, Transaction, Wallet
from tests.service.test_streaming import connected_bot, ping_request
from tests.support.grpc_server import running_server, stub
from tests.support.rawbot import message
from tests.support.waiting import eventually


async def test_every_payload_is_persisted_and_bad_input_is_recorded():
    async with running_server() as server:
        bot = await connected_bot(server)
        cid = bot.client_id
        for payload in (
            {"register": pb2.ClientRegistration(client_name="Alpha", client_type="trader", version="1.2",
                                                api_url="http://bot")},
            {"wallet_update": pb2.WalletUpdate(wallet_id="w1", symbol="BTC", balance_available="1.25",
                                               balance_locked="0.5")},
            {"transaction": pb2.TransactionReport(transaction_id="t1", type="deposit", symbol="BTC", amount="3.5",
                                                  status="done")},
            {"transaction": pb2.TransactionReport(transaction_id="t1", type="deposit", symbol="BTC", amount="3.5",
                                                  status="done")},
            {"status": pb2.StatusUpdate(status=common_pb2.CLIENT_STATUS_PAUSED, details="manual")},
            {"error": pb2.ErrorReport(severity="high", message="boom", traceback="tb")},
            {"log": pb2.LogEntry(level="info", message="hello", extra_data="{}")},
            {"wallet_update": pb2.WalletUpdate(wallet_id="w1", symbol="BTC", balance_available="abc",
                                               balance_locked="0")},
            {"transaction": pb2.TransactionReport(transaction_id="t2", type="gift", symbol="BTC", amount="1")},
            {"log": pb2.LogEntry(level="info", message="x" * 20_000)},
        ):
            bot.send(message(cid, **payload))
        async with server.channel() as channel:  # the stream is still alive after the bad ones
            ack = await stub(channel).ExecuteCommandSync(ping_request(cid), metadata=server.operator_metadata(),
                                                         timeout=5)
        assert ack.success

        async def stored() -> bool:
            return await RejectedMessage.objects.filter(client_id=cid).acount() == 3
        await eventually(stored, message="rejections stored")
        client = await Client.objects.aget(client_id=cid)
        assert (client.name, client.client_type, client.version, client.status) == ("Alpha", "trader", "1.2",
                                                                                     "paused")
        wallet = await Wallet.objects.aget(client=client, wallet_id="w1", symbol="BTC")
        assert wallet.balance_available == Decimal("1.25") and wallet.balance_locked == Decimal("0.5")
        assert await Transaction.objects.filter(client=client).acount() == 1
        assert await StatusChange.objects.filter(client=client, status="paused").aexists()
        assert await ErrorReport.objects.filter(client=client, message="boom").aexists()
        assert await LogEntry.objects.filter(client=client, message="hello").aexists()
        reasons = [r async for r in RejectedMessage.objects.filter(client_id=cid).values_list("reason", flat=True)]
        assert any("balance_available" in r for r in reasons) and any("gift" in r for r in reasons)
        assert any("log.message" in r or "too long" in r for r in reasons), reasons
        await bot.__aexit__()
