"""A small in-process CryptoStreamingService double for bot and command-client tests.

It uses the real Authenticator (with an in-memory key store) and exposes what it saw, so tests can
check the wire behaviour of BotClient and the command client without Redis or the database. The
interface mirrors tests/support/grpc_server.running_server: .target, .operator_token, .make_client_key().
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc
from apps.crypto.grpc.services.auth import AuthError, Authenticator, KeyRecord, generate_key, hash_key

OPERATOR_TOKEN = "fake-operator-token"


class MemoryKeyStore:
    def __init__(self) -> None:
        self.records: dict[str, KeyRecord] = {}
        self.lookups = 0

    def add(self, client_id: str, revoked: bool = False) -> str:
        key = generate_key()
        self.records[hash_key(key)] = KeyRecord(client_id, revoked)
        return key

    async def find(self, key_hash: str) -> KeyRecord | None:
        self.lookups += 1
        return self.records.get(key_hash)


@dataclass
class FakeService(pb2_grpc.CryptoStreamingServiceServicer):
    auth: Authenticator
    send_headers: bool = True  # the real server should send initial metadata once a stream is accepted
    name_responses: bool = True  # False: SendCommandResponse.command_id left empty, like a server before that field
    received: list[pb2.ClientMessage] = field(default_factory=list)
    streams: dict[str, asyncio.Queue[pb2.DjangoCommand]] = field(default_factory=dict)
    acks: dict[str, asyncio.Future[common_pb2.CommandAck]] = field(default_factory=dict)
    metadata: list[dict[str, str]] = field(default_factory=list)
    stream_ends: list[str] = field(default_factory=list)  # "ok" when the bot half-closed
    commands_in: list[pb2.DjangoCommand] = field(default_factory=list)  # commands as operators sent them
    last_command_id: str = ""  # the id the last accepted command went out under

    def payloads(self, kind: str) -> list[pb2.ClientMessage]:
        return [m for m in self.received if m.WhichOneof("payload") == kind]

    async def ConnectClient(self, request_iterator, context):  # noqa: N802 (gRPC API)
        md = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.metadata.append(md)
        first = await anext(request_iterator)
        self.received.append(first)
        try:
            await self.auth.authenticate_client(md, first.client_id)
        except AuthError as exc:
            await context.abort(exc.code, exc.details)
        if self.send_headers:
            await context.send_initial_metadata((("x-replica-id", "fake"),))
        queue: asyncio.Queue[pb2.DjangoCommand] = asyncio.Queue()
        self.streams[first.client_id] = queue
        reader = asyncio.create_task(self._read(request_iterator))
        try:
            await self._write(queue, reader, context)
        finally:
            reader.cancel()
            if self.streams.get(first.client_id) is queue:
                del self.streams[first.client_id]

    async def _read(self, request_iterator) -> None:
        async for message in request_iterator:
            self.received.append(message)
            if message.WhichOneof("payload") == "command_ack":
                future = self.acks.pop(message.command_ack.command_id, None)
                if future is not None and not future.done():
                    future.set_result(message.command_ack)
        self.stream_ends.append("ok")

    async def _write(self, queue, reader, context) -> None:
        while not reader.done():
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait([getter, reader], return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                await context.write(getter.result())
            else:
                getter.cancel()

    def _accept(self, request: pb2.SendCommandRequest) -> pb2.DjangoCommand:
        """Like the real server: keep what arrived, name an id-less command, stamp it."""
        self.commands_in.append(request.command)
        command = pb2.DjangoCommand()
        command.CopyFrom(request.command)
        if not command.command_id:
            command.command_id = uuid.uuid4().hex
        if not command.HasField("timestamp"):
            command.timestamp.GetCurrentTime()
        self.last_command_id = command.command_id
        return command

    async def SendCommandToClient(self, request, context):  # noqa: N802
        await self._operator(context)
        command = self._accept(request)
        queue = self.streams.get(request.client_id)
        if queue is None:
            return pb2.SendCommandResponse(success=False, error=f"client {request.client_id} not connected",
                                           command_id=command.command_id)
        queue.put_nowait(command)
        return pb2.SendCommandResponse(success=True, command_id=command.command_id if self.name_responses else "")

    async def ExecuteCommandSync(self, request, context):  # noqa: N802
        await self._operator(context)
        command = self._accept(request)
        queue = self.streams.get(request.client_id)
        if queue is None:
            return common_pb2.CommandAck(command_id=command.command_id, success=False, error="not connected")
        future = self.acks[command.command_id] = asyncio.get_running_loop().create_future()
        queue.put_nowait(command)
        try:
            return await asyncio.wait_for(future, max(0.0, (context.time_remaining() or 10.0) - 0.05))
        except TimeoutError:
            return common_pb2.CommandAck(command_id=command.command_id, success=False, error="timed out")

    async def _operator(self, context) -> None:
        md = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        try:
            self.auth.authenticate_operator(md)
        except AuthError as exc:
            await context.abort(exc.code, exc.details)


@dataclass
class FakeServer:
    service: FakeService
    store: MemoryKeyStore
    target: str
    server: grpc.aio.Server
    operator_token: str = OPERATOR_TOKEN

    async def make_client_key(self, client_id: str) -> str:
        return self.store.add(client_id)


async def start_fake(port: int = 0, auth: bool = True, send_headers: bool = True,
                     store: MemoryKeyStore | None = None, name_responses: bool = True) -> FakeServer:
    store = store or MemoryKeyStore()
    service = FakeService(Authenticator(auth, [OPERATOR_TOKEN], store=store), send_headers=send_headers,
                          name_responses=name_responses)
    server = grpc.aio.server()
    pb2_grpc.add_CryptoStreamingServiceServicer_to_server(service, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return FakeServer(service, store, f"127.0.0.1:{bound}", server)


@asynccontextmanager
async def running_fake(**options: object) -> AsyncIterator[FakeServer]:
    fake = await start_fake(**options)  # type: ignore[arg-type]
    try:
        yield fake
    finally:
        await fake.server.stop(0.2)
