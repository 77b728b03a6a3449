"""Client traffic through a real replica reaches the (contract-faithful) Centrifugo API, in order."""

from __future__ import annotations

from dataclasses import replace

import grpc

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.publishing import PublisherConfig, build_publisher
from tests.service.test_streaming import connected_bot, ping_request
from tests.support.fake_centrifugo import FakeCentrifugo
from tests.support.grpc_server import running_server, stub
from tests.support.rawbot import message


def wallet(client_id: str, n: int) -> pb2.ClientMessage:
    return message(client_id, wallet_update=pb2.WalletUpdate(wallet_id="w", symbol="BTC",
                                                             balance_available=f"{n}.5", balance_locked="0"))


async def test_stream_messages_commands_and_acks_are_published_in_order():
    async with FakeCentrifugo() as fake:
        config = replace(PublisherConfig.from_env({"CENTRIFUGO_API_URL": fake.url,
                                                   "CENTRIFUGO_API_KEY": fake.api_key}), flush_interval=0.01)
        replica_id = "publishing-replica"
        publisher = build_publisher(config, replica_id)
        async with running_server(publisher=publisher, replica_id=replica_id) as server:
            bot = await connected_bot(server)
            for n in range(5):
                bot.send(wallet(bot.client_id, n))
            async with server.channel() as channel:
                ack = await stub(channel).ExecuteCommandSync(ping_request(bot.client_id, "pub-" + bot.client_id),
                                                             metadata=server.operator_metadata(), timeout=5)
            assert ack.success
            channel_name = f"crypto:{bot.client_id}:updates"
            await fake.wait_until(lambda: sum(1 for d in fake.data_on(channel_name) if d["type"] == "command_ack") >= 1)
            mine = fake.data_on(channel_name)
            balances = [d["payload"]["balance_available"] for d in mine if d["type"] == "wallet_update"]
            assert balances == [f"{n}.5" for n in range(5)]
            kinds = [d["type"] for d in mine]
            assert "command" in kinds and kinds.count("command_ack") == 1
            assert all(d["client_id"] == bot.client_id and d["replica"] == replica_id for d in mine)
            assert len([d for d in fake.data_on("crypto:all") if d.get("client_id") == bot.client_id]) == len(mine)
            await bot.__aexit__()


async def test_centrifugo_down_never_blocks_a_stream():
    async with FakeCentrifugo() as fake:
        fake.slow(60)  # a hung Centrifugo
        config = PublisherConfig.from_env({"CENTRIFUGO_API_URL": fake.url, "CENTRIFUGO_API_KEY": fake.api_key})
        async with running_server(publisher=build_publisher(config, "hung-test")) as server:
            bot = await connected_bot(server)
            for n in range(50):
                bot.send(wallet(bot.client_id, n))
            async with server.channel() as channel:
                ack = await stub(channel).ExecuteCommandSync(ping_request(bot.client_id),
                                                             metadata=server.operator_metadata(), timeout=5)
            assert ack.success, ack.error
            assert bot.status is None or bot.status == grpc.StatusCode.OK
            fake.release()
            await bot.__aexit__()
