"""RpcMetrics, the grpc.aio server interceptor: every way an RPC ends is counted by method and status code."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from prometheus_client import REGISTRY

from apps.crypto.grpc.services.metrics import RpcMetrics

SERVICE = "test.Probe"


def handled(method: str, code: str) -> float:
    return REGISTRY.get_sample_value("crypto_grpc_server_handled_total", {
        "grpc_service": SERVICE, "grpc_method": method, "grpc_type": _type(method), "grpc_code": code}) or 0.0


def _type(method: str) -> str:
    return {"Echo": "unary", "Abort": "unary", "Boom": "unary", "SetCode": "unary", "Count": "server_stream",
            "Hang": "server_stream", "Chat": "bidi_stream"}[method]


async def echo(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return request


async def abort(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    await context.abort(grpc.StatusCode.PERMISSION_DENIED, "no")


async def boom(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    raise RuntimeError("bug")


async def set_code(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    context.set_code(grpc.StatusCode.NOT_FOUND)
    context.set_details("none")
    return b""


async def count(request: bytes, context: grpc.aio.ServicerContext):
    for i in range(3):
        yield bytes([i])


async def hang(request: bytes, context: grpc.aio.ServicerContext):
    yield b"first"
    await asyncio.Event().wait()


async def chat(requests, context: grpc.aio.ServicerContext) -> None:
    async for item in requests:
        await context.write(item)


@pytest.fixture
async def target():
    handlers = {
        "Echo": grpc.unary_unary_rpc_method_handler(echo), "Abort": grpc.unary_unary_rpc_method_handler(abort),
        "Boom": grpc.unary_unary_rpc_method_handler(boom), "SetCode": grpc.unary_unary_rpc_method_handler(set_code),
        "Count": grpc.unary_stream_rpc_method_handler(count), "Hang": grpc.unary_stream_rpc_method_handler(hang),
        "Chat": grpc.stream_stream_rpc_method_handler(chat),
    }
    server = grpc.aio.server(interceptors=[RpcMetrics()])
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(None)


async def test_each_ending_is_counted_with_its_code(target):
    before = {(m, c): handled(m, c) for m, c in [("Echo", "OK"), ("Abort", "PERMISSION_DENIED"),
                                                 ("Boom", "UNKNOWN"), ("SetCode", "NOT_FOUND"), ("Count", "OK"),
                                                 ("Chat", "OK"), ("Hang", "CANCELLED")]}
    async with grpc.aio.insecure_channel(target) as channel:
        def unary(name: str):
            return channel.unary_unary(f"/{SERVICE}/{name}")
        for _ in range(2):
            assert await unary("Echo")(b"x") == b"x"
        for name, code in [("Abort", grpc.StatusCode.PERMISSION_DENIED), ("Boom", grpc.StatusCode.UNKNOWN),
                           ("SetCode", grpc.StatusCode.NOT_FOUND), ("Nope", grpc.StatusCode.UNIMPLEMENTED)]:
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(name)(b"")
            assert caught.value.code() == code
        assert [item async for item in channel.unary_stream(f"/{SERVICE}/Count")(b"")] == [b"\0", b"\1", b"\2"]

        async def two():
            yield b"a"
            yield b"b"
        assert [item async for item in channel.stream_stream(f"/{SERVICE}/Chat")(two())] == [b"a", b"b"]
        hung = channel.unary_stream(f"/{SERVICE}/Hang")(b"")
        assert await hung.read() == b"first"
        hung.cancel()  # the server's handler is cancelled while it waits

    async def counted() -> bool:
        return handled("Hang", "CANCELLED") - before[("Hang", "CANCELLED")] == 1
    for _ in range(200):
        if await counted():
            break
        await asyncio.sleep(0.02)
    after = {key: handled(*key) - value for key, value in before.items()}
    assert after == {("Echo", "OK"): 2, ("Abort", "PERMISSION_DENIED"): 1, ("Boom", "UNKNOWN"): 1,
                     ("SetCode", "NOT_FOUND"): 1, ("Count", "OK"): 1, ("Chat", "OK"): 1, ("Hang", "CANCELLED"): 1}
    # an unknown method (the caller's text) never becomes a label
    assert not [m for m in REGISTRY.collect() if m.name == "crypto_grpc_server_handled"
                for s in m.samples if s.labels.get("grpc_method") == "Nope"]
    seconds = REGISTRY.get_sample_value("crypto_grpc_server_handling_seconds_count",
                                        {"grpc_service": SERVICE, "grpc_method": "Echo", "grpc_type": "unary"})
    started = REGISTRY.get_sample_value("crypto_grpc_server_started_total",
                                        {"grpc_service": SERVICE, "grpc_method": "Echo", "grpc_type": "unary"})
    assert seconds == started >= 2

