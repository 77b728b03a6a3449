"""A deliberately thin bot for service tests: raw messages in, raw commands out."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc

END = object()


def message(client_id: str, **payload: object) -> pb2.ClientMessage:
    msg = pb2.ClientMessage(client_id=client_id, message_id=uuid.uuid4().hex, **payload)
    msg.timestamp.GetCurrentTime()
    return msg


def heartbeat(client_id: str) -> pb2.ClientMessage:
    return message(client_id, heartbeat=pb2.HeartbeatUpdate())


@dataclass
class RawBot:
    """Opens ConnectClient, sends what it is given, records commands, acks them when auto_ack."""

    target: str
    client_id: str
    api_key: str = ""
    auto_ack: bool = True
    read: bool = True
    commands: list[pb2.DjangoCommand] = field(default_factory=list)
    outbox: asyncio.Queue = field(default_factory=asyncio.Queue)
    status: grpc.StatusCode | None = None
    details: str = ""
    got_command: asyncio.Event = field(default_factory=asyncio.Event)
    receipts: list[pb2.DjangoCommand] = field(default_factory=list)  # MessageReceipts, kept apart from commands
    got_receipt: asyncio.Event = field(default_factory=asyncio.Event)

    def receipted(self) -> list[str]:
        """Every message_id the receipts named so far, in order."""
        return [mid for r in self.receipts for mid in r.receipt.message_ids]

    async def __aenter__(self) -> "RawBot":
        self.channel = grpc.aio.insecure_channel(self.target)
        metadata = (("x-api-key", self.api_key),) if self.api_key else ()
        self.call = pb2_grpc.CryptoStreamingServiceStub(self.channel).ConnectClient(self._requests(), metadata=metadata)
        self.task = asyncio.create_task(self._receive())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.outbox.put_nowait(END)  # lets the request generator finish instead of being torn down
        self.call.cancel()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.sleep(0)
        await self.channel.close()

    async def _requests(self):
        while (item := await self.outbox.get()) is not END:
            yield item

    def send(self, msg: pb2.ClientMessage) -> None:
        self.outbox.put_nowait(msg)

    def close_sending(self) -> None:
        self.outbox.put_nowait(END)

    async def _receive(self) -> None:
        try:
            if not self.read:
                await asyncio.Event().wait()
            async for command in self.call:
                if command.WhichOneof("command") == "receipt":  # no command: never acked
                    self.receipts.append(command)
                    self.got_receipt.set()
                    continue
                self.commands.append(command)
                self.got_command.set()
                if self.auto_ack and command.WhichOneof("command") != "ping":
                    self.send(message(self.client_id, command_ack=common_pb2.CommandAck(
                        command_id=command.command_id, success=True, message="done",
                        current_status=common_pb2.CLIENT_STATUS_ACTIVE)))
            self.status = grpc.StatusCode.OK
        except grpc.aio.AioRpcError as exc:
            self.status, self.details = exc.code(), exc.details()

    async def ended(self, timeout: float = 10.0) -> grpc.StatusCode | None:
        await asyncio.wait_for(asyncio.shield(self.task), timeout)
        return self.status

    async def wait_commands(self, count: int, timeout: float = 10.0) -> list[pb2.DjangoCommand]:
        async def until() -> None:
            while len(self.commands) < count:
                self.got_command.clear()
                await self.got_command.wait()
        await asyncio.wait_for(until(), timeout)
        return self.commands
