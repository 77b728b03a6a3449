"""Operator-side calls for tests: SendCommandToClient / ExecuteCommandSync / BroadcastCommand with a bearer token."""

from __future__ import annotations

import uuid

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc


def pause_request(client_id: str, command_id: str = "") -> pb2.SendCommandRequest:
    command = pb2.DjangoCommand(command_id=command_id or uuid.uuid4().hex, pause=pb2.PauseClientCommand(reason="t"))
    return pb2.SendCommandRequest(client_id=client_id, command=command)


class Operator:
    """One channel per replica target, reused across calls."""

    def __init__(self, token: str) -> None:
        self.metadata = (("authorization", f"Bearer {token}"),)
        self.channels: dict[str, grpc.aio.Channel] = {}

    def stub(self, target: str) -> pb2_grpc.CryptoStreamingServiceStub:
        if target not in self.channels:
            self.channels[target] = grpc.aio.insecure_channel(target)
        return pb2_grpc.CryptoStreamingServiceStub(self.channels[target])

    async def execute(self, target: str, client_id: str, command_id: str = "",
                      timeout: float = 10.0) -> common_pb2.CommandAck:
        return await self.stub(target).ExecuteCommandSync(pause_request(client_id, command_id),
                                                          metadata=self.metadata, timeout=timeout)

    async def send(self, target: str, client_id: str, command_id: str = "",
                   timeout: float = 10.0) -> pb2.SendCommandResponse:
        return await self.stub(target).SendCommandToClient(pause_request(client_id, command_id),
                                                           metadata=self.metadata, timeout=timeout)

    async def broadcast(self, target: str, selector: pb2.ClientSelector, command: pb2.DjangoCommand | None = None,
                        timeout: float = 10.0) -> tuple[list[pb2.BroadcastClientResult], pb2.BroadcastSummary | None]:
        """Every client result in arrival order, and the summary (None if the stream ended without one)."""
        command = command or pb2.DjangoCommand(pause=pb2.PauseClientCommand(reason="fleet"))
        request = pb2.BroadcastCommandRequest(selector=selector, command=command)
        results, summary = [], None
        async for item in self.stub(target).BroadcastCommand(request, metadata=self.metadata, timeout=timeout):
            if item.WhichOneof("result") == "client":
                results.append(item.client)
            else:
                summary = item.summary
        return results, summary

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()
