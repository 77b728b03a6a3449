"""Mutated messages and raw garbage on ConnectClient: the replica stays up, other clients unaffected."""

from __future__ import annotations

import asyncio
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Wallet
from tests.service.test_streaming import connected_bot, ping_request
from tests.support.grpc_server import running_server, stub
from tests.support.rawbot import message

METHOD = "/crypto.CryptoStreamingService/ConnectClient"


def seed_messages(client_id: str) -> list[bytes]:
    return [m.SerializeToString() for m in (
        message(client_id, wallet_update=pb2.WalletUpdate(wallet_id="w", symbol="BTC", balance_available="1.5",
                                                          balance_locked="0")),
        message(client_id, transaction=pb2.TransactionReport(transaction_id="t", type="deposit", symbol="BTC",
                                                             amount="2")),
        message(client_id, register=pb2.ClientRegistration(client_name="n", client_type="t", version="1")),
    )]


def mutate(data: bytes, flips: list[tuple[int, int]]) -> bytes:
    buf = bytearray(data)
    for position, value in flips:
        if buf:
            buf[position % len(buf)] = value
    return bytes(buf)


async def send_raw(target: str, frames: list[bytes], api_key: str = "") -> None:
    """Open ConnectClient with identity serializers and push frames as they are."""
    async with grpc.aio.insecure_channel(target) as channel:
        call = channel.stream_stream(METHOD, request_serializer=lambda b: b, response_deserializer=lambda b: b)(
            iter(frames), metadata=(("x-api-key", api_key),) if api_key else (), timeout=3)
        try:
            async for _ in call:
                pass
        except grpc.aio.AioRpcError:
            pass


frames_strategy = st.lists(
    st.one_of(
        st.binary(max_size=64),
        st.tuples(st.integers(0, 2), st.lists(st.tuples(st.integers(0, 400), st.integers(0, 255)), max_size=6)),
    ),
    min_size=1, max_size=6)


async def test_fuzzed_streams_do_not_hurt_the_replica_or_other_clients():
    async with running_server(auth=False) as server:
        bystander = await connected_bot(server)
        bystander.send(message(bystander.client_id, wallet_update=pb2.WalletUpdate(
            wallet_id="keep", symbol="ETH", balance_available="7.25", balance_locked="0.5")))

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(frames_strategy)
        def run(frames_spec):
            client_id = f"fuzz-{uuid.uuid4().hex[:8]}"
            seeds = seed_messages(client_id)
            frames = [item if isinstance(item, bytes) else mutate(seeds[item[0]], item[1]) for item in frames_spec]
            asyncio.run_coroutine_threadsafe(send_raw(server.target, frames), loop).result(10)

        loop = asyncio.get_running_loop()
        await asyncio.to_thread(run)

        async with server.channel() as channel:
            status = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
            assert status.status == health_pb2.HealthCheckResponse.SERVING
            ack = await stub(channel).ExecuteCommandSync(ping_request(bystander.client_id),
                                                         metadata=server.operator_metadata(), timeout=5)
        assert ack.success, ack.error
        assert not bystander.task.done()
        wallet = await Wallet.objects.aget(client__client_id=bystander.client_id, wallet_id="keep")
        assert str(wallet.balance_available).rstrip("0") == "7.25" and wallet.symbol == "ETH"
        async for fuzzed in Wallet.objects.filter(client__client_id__startswith="fuzz-"):
            assert fuzzed.balance_available >= 0 and fuzzed.balance_locked >= 0
        await bystander.__aexit__()
