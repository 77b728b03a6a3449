"""A bare relay: the floor the product is measured against, in the same run, with the same load generator.

It speaks the contract's ConnectClient, ExecuteCommandSync and BroadcastCommand and does nothing else: no
auth, no journal, no metrics, no logs, no ingest, no retries, no grace window. A stream's first message
names its client; the relay SETs `relay:owner:{id}` to itself and keeps the stream. A command:

- same relay: written to the local stream, the ack resolves the waiting call (no Redis);
- another relay: owner-key GET, one PUBLISH to the owner's channel, the owner writes it to the stream,
  and the ack PUBLISH back to the accepting relay;
- a broadcast: one PUBLISH per other relay; each writes a copy to every stream it holds, and PUBLISHes
  all its acks back in one message; the accepting relay streams a result per client, then the summary.

`python -m bench.relay NAME PORT REDIS_URL PEER,PEER,...` prints "ready" once it serves; RelayProcess
starts one from the harness.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.bus.keys import Keys

PREFIX = "relay"
KEYS = Keys(PREFIX)
SERVICE = "crypto.CryptoStreamingService"
COMMAND, ACK, BROADCAST, RESULTS = b"C", b"A", b"B", b"R"
SEP = b"\x00"


@dataclass(eq=False)
class Stream:
    context: Any
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    inflight: dict[str, str] = field(default_factory=dict)  # command_id -> relay to answer

    async def write(self, command: pb2.DjangoCommand, reply_to: str) -> None:
        self.inflight[command.command_id] = reply_to
        async with self.lock:
            await self.context.write(command)


class Relay:
    def __init__(self, name: str, peers: list[str], redis: Any) -> None:
        self.name, self.peers, self.redis = name, [p for p in peers if p != name], redis
        self.streams: dict[str, Stream] = {}
        self.waiting: dict[str, asyncio.Future[common_pb2.CommandAck]] = {}
        self.parts: dict[str, asyncio.Queue[list[tuple[str, common_pb2.CommandAck]]]] = {}

    # streams ---------------------------------------------------------------------
    async def connect(self, requests: Any, context: Any) -> None:
        stream, client_id = Stream(context), ""
        try:
            async for message in requests:
                if not client_id:
                    client_id = message.client_id
                    self.streams[client_id] = stream
                    await self.redis.set(KEYS.owner(client_id), f"{self.name}|0")
                if message.WhichOneof("payload") == "command_ack":
                    await self.on_ack(stream, message.command_ack)
        finally:
            if self.streams.get(client_id) is stream:
                del self.streams[client_id]

    async def on_ack(self, stream: Stream, ack: common_pb2.CommandAck) -> None:
        reply_to = stream.inflight.pop(ack.command_id, self.name)
        if reply_to == self.name:
            self.resolve(ack)
        else:
            await self.redis.publish(KEYS.channel(reply_to), ACK + ack.SerializeToString())

    def resolve(self, ack: common_pb2.CommandAck) -> None:
        future = self.waiting.get(ack.command_id)
        if future is not None and not future.done():
            future.set_result(ack)

    # commands --------------------------------------------------------------------
    async def execute(self, request: pb2.SendCommandRequest, context: Any) -> common_pb2.CommandAck:
        command = request.command
        command.command_id = command.command_id or uuid.uuid4().hex
        future = self.waiting[command.command_id] = asyncio.get_running_loop().create_future()
        try:
            stream = self.streams.get(request.client_id)
            if stream is not None:
                await stream.write(command, self.name)
            else:
                owner = await self.redis.get(KEYS.owner(request.client_id))
                if owner is None:
                    return common_pb2.CommandAck(command_id=command.command_id, error="not connected")
                await self.redis.publish(KEYS.channel(owner.decode().partition("|")[0]),
                                         COMMAND + self.name.encode() + SEP + request.client_id.encode() + SEP
                                         + command.SerializeToString())
            return await asyncio.wait_for(future, 10)
        finally:
            del self.waiting[command.command_id]

    async def broadcast(self, request: pb2.BroadcastCommandRequest, context: Any) -> Any:
        broadcast_id = uuid.uuid4().hex
        parts = self.parts[broadcast_id] = asyncio.Queue()
        body = BROADCAST + self.name.encode() + SEP + broadcast_id.encode() + SEP + request.command.SerializeToString()
        try:
            for peer in self.peers:
                await self.redis.publish(KEYS.channel(peer), body)
            local = asyncio.create_task(self.deliver_all(broadcast_id, request.command))
            local.add_done_callback(lambda done: parts.put_nowait(done.result()))
            summary = pb2.BroadcastSummary(broadcast_id=broadcast_id)
            for _ in range(len(self.peers) + 1):
                for client_id, ack in await asyncio.wait_for(parts.get(), 15):
                    summary.targeted += 1
                    summary.acked += ack.success
                    yield pb2.BroadcastResult(client=pb2.BroadcastClientResult(client_id=client_id, ack=ack))
            summary.failed = summary.targeted - summary.acked
            yield pb2.BroadcastResult(summary=summary)
        finally:
            del self.parts[broadcast_id]

    async def deliver_all(self, broadcast_id: str, command: pb2.DjangoCommand,
                          reply_to: str = "") -> list[tuple[str, common_pb2.CommandAck]]:
        """A copy to every stream held here; every ack (10 s at most)."""
        loop, futures, writes = asyncio.get_running_loop(), {}, []
        for client_id, stream in list(self.streams.items()):
            copy = pb2.DjangoCommand()
            copy.CopyFrom(command)
            copy.command_id = f"{broadcast_id}:{client_id}"
            futures[client_id] = self.waiting[copy.command_id] = loop.create_future()
            writes.append(stream.write(copy, self.name))
        await asyncio.gather(*writes)  # every stream's write at once, as the product's per-stream writers do
        try:
            await asyncio.wait(futures.values(), timeout=10)
            return [(c, f.result()) for c, f in futures.items() if f.done()]
        finally:
            for client_id in futures:
                self.waiting.pop(f"{broadcast_id}:{client_id}", None)

    # the bus -----------------------------------------------------------------------
    async def listen(self, ready: asyncio.Event) -> None:
        pubsub = self.redis.pubsub()
        await pubsub.subscribe(KEYS.channel(self.name))
        ready.set()
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            data: bytes = message["data"]
            kind, rest = data[:1], data[1:]
            if kind == ACK:
                self.resolve(common_pb2.CommandAck.FromString(rest))
            elif kind == COMMAND:
                reply_to, client_id, raw = rest.split(SEP, 2)
                stream = self.streams.get(client_id.decode())
                if stream is not None:
                    asyncio.create_task(stream.write(pb2.DjangoCommand.FromString(raw), reply_to.decode()))
            elif kind == BROADCAST:
                reply_to, broadcast_id, raw = rest.split(SEP, 2)
                asyncio.create_task(self.answer_broadcast(reply_to.decode(), broadcast_id.decode(),
                                                          pb2.DjangoCommand.FromString(raw)))
            elif kind == RESULTS:
                broadcast_id, raw = rest.split(SEP, 1)
                queue = self.parts.get(broadcast_id.decode())
                if queue is not None:
                    queue.put_nowait([(r.client_id, r.ack) for r in unpack(raw)])

    async def answer_broadcast(self, reply_to: str, broadcast_id: str, command: pb2.DjangoCommand) -> None:
        results = await self.deliver_all(broadcast_id, command)
        await self.redis.publish(KEYS.channel(reply_to), RESULTS + broadcast_id.encode() + SEP + pack(results))


def pack(results: list[tuple[str, common_pb2.CommandAck]]) -> bytes:
    """Every result as a length-prefixed BroadcastClientResult."""
    out = bytearray()
    for client_id, ack in results:
        raw = pb2.BroadcastClientResult(client_id=client_id, ack=ack).SerializeToString()
        out += len(raw).to_bytes(4, "big") + raw
    return bytes(out)


def unpack(raw: bytes) -> list[pb2.BroadcastClientResult]:
    items, at = [], 0
    while at < len(raw):
        size = int.from_bytes(raw[at:at + 4], "big")
        items.append(pb2.BroadcastClientResult.FromString(raw[at + 4:at + 4 + size]))
        at += 4 + size
    return items


async def serve(name: str, port: int, redis_url: str, peers: list[str]) -> None:
    import redis.asyncio as aioredis

    relay = Relay(name, peers, aioredis.Redis.from_url(redis_url))
    handlers = {
        "ConnectClient": grpc.stream_stream_rpc_method_handler(
            relay.connect, request_deserializer=pb2.ClientMessage.FromString,
            response_serializer=pb2.DjangoCommand.SerializeToString),
        "ExecuteCommandSync": grpc.unary_unary_rpc_method_handler(
            relay.execute, request_deserializer=pb2.SendCommandRequest.FromString,
            response_serializer=common_pb2.CommandAck.SerializeToString),
        "BroadcastCommand": grpc.unary_stream_rpc_method_handler(
            relay.broadcast, request_deserializer=pb2.BroadcastCommandRequest.FromString,
            response_serializer=pb2.BroadcastResult.SerializeToString),
    }
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    ready = asyncio.Event()
    listener = asyncio.create_task(relay.listen(ready))
    await ready.wait()
    print("ready", flush=True)
    await asyncio.gather(server.wait_for_termination(), listener)


class RelayProcess:
    """One bare relay started by the harness (stopped with stop())."""

    def __init__(self, name: str, port: int, redis_url: str, peers: list[str], wrapper: tuple[str, ...] = (),
                 ready_timeout: float = 30.0) -> None:
        self.name, self.port, self.redis_url, self.peers = name, port, redis_url, peers
        self.wrapper, self.ready_timeout = wrapper, ready_timeout  # command line prefix (valgrind), start-up wait
        self.process: asyncio.subprocess.Process | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> RelayProcess:
        root = Path(__file__).resolve().parent.parent
        self.process = await asyncio.create_subprocess_exec(
            *self.wrapper, sys.executable, "-m", "bench.relay", self.name, str(self.port), self.redis_url,
            ",".join(self.peers), cwd=root, stdout=asyncio.subprocess.PIPE)
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), self.ready_timeout)
        if line.strip() != b"ready":
            raise RuntimeError(f"relay {self.name} did not start: {line!r}")
        return self

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            await asyncio.wait_for(self.process.wait(), 10)


@contextlib.asynccontextmanager
async def relays(redis_url: str, count: int, wrapper: tuple[str, ...] = (),
                 ready_timeout: float = 30.0) -> AsyncIterator[list[RelayProcess]]:
    """`count` bare relays on free ports, each knowing the others, on the given Redis (command lines
    prefixed by `wrapper`)."""
    from .procs import free_port

    names = [f"relay-{i + 1}" for i in range(count)]
    group = [RelayProcess(name, free_port(), redis_url, names, wrapper, ready_timeout) for name in names]
    try:
        await asyncio.gather(*(r.start() for r in group))
        yield group
    finally:
        await asyncio.gather(*(r.stop() for r in group), return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4].split(",")))
