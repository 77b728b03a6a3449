"""A receipting bot written from the protos alone, as an outside team would: outbox, resend, reconnect.

It sends transactions and log lines at a steady rate, keeps each message until a MessageReceipt names
it, and on every new stream (to the next target) registers with wants_receipts and resends its outbox
before anything new. It records when each message was first sent and first receipted.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2_grpc as pb2_grpc

TICK = 0.01  # seconds between bursts


@dataclass
class DurableBot:
    targets: list[str]
    client_id: str
    rate: float  # messages per second
    total: int  # messages to send, half transactions, half log lines
    api_key: str = ""
    outbox: OrderedDict[str, pb2.ClientMessage] = field(default_factory=OrderedDict)
    sent_at: dict[str, float] = field(default_factory=dict)
    receipt_after: dict[str, float] = field(default_factory=dict)  # message_id -> seconds from send to receipt
    made: int = 0
    resent: int = 0
    streams: int = 0
    endings: list[str] = field(default_factory=list)
    _index: int = 0
    _stop: bool = False

    def message(self, n: int) -> pb2.ClientMessage:
        msg = pb2.ClientMessage(client_id=self.client_id, message_id=f"{self.client_id}-{n}")
        if n % 2:
            msg.log.CopyFrom(pb2.LogEntry(level="info", message=f"line {n}"))
        else:
            msg.transaction.CopyFrom(pb2.TransactionReport(transaction_id=f"t{n}", type="deposit", symbol="BTC",
                                                           amount="1", status="pending"))
        msg.timestamp.GetCurrentTime()
        return msg

    @property
    def transactions(self) -> int:
        return (self.total + 1) // 2

    @property
    def logs(self) -> int:
        return self.total // 2

    async def run(self, deadline: float) -> None:
        """Stream until everything was made and receipted, or `deadline` (monotonic) passes."""
        while not self._stop and time.monotonic() < deadline:
            if self.made >= self.total and not self.outbox:
                return
            target = self.targets[self._index % len(self.targets)]
            self._index += 1
            await self._stream(target, deadline)
            await asyncio.sleep(0.05)

    async def _stream(self, target: str, deadline: float) -> None:
        metadata = (("x-api-key", self.api_key),) if self.api_key else ()
        self.streams += 1
        async with grpc.aio.insecure_channel(target) as channel:
            call = pb2_grpc.CryptoStreamingServiceStub(channel).ConnectClient(self._requests(deadline),
                                                                            metadata=metadata)
            try:
                async for command in call:
                    if command.WhichOneof("command") == "receipt":
                        self._receipted(command.receipt.message_ids)
                    if self.made >= self.total and not self.outbox:
                        call.cancel()
                        return
                self.endings.append("OK")
            except grpc.aio.AioRpcError as exc:
                self.endings.append(f"{exc.code().name}: {(exc.details() or '')[:80]}")

    def _receipted(self, message_ids: list[str]) -> None:
        now = time.monotonic()
        for message_id in message_ids:
            if self.outbox.pop(message_id, None) is not None and message_id not in self.receipt_after:
                self.receipt_after[message_id] = now - self.sent_at[message_id]

    async def _requests(self, deadline: float) -> AsyncIterator[pb2.ClientMessage]:
        register = pb2.ClientMessage(client_id=self.client_id, message_id=f"{self.client_id}-reg-{self.streams}",
                                     register=pb2.ClientRegistration(client_name="durable", wants_receipts=True))
        yield register
        for message in list(self.outbox.values()):  # what no receipt confirmed, in order, before anything new
            self.resent += 1
            yield message
        burst = max(1, round(self.rate * TICK))
        next_at = time.monotonic()
        while self.made < self.total and time.monotonic() < deadline:
            for _ in range(min(burst, self.total - self.made)):
                message = self.message(self.made)
                self.made += 1
                self.outbox[message.message_id] = message
                self.sent_at[message.message_id] = time.monotonic()
                yield message
            next_at += TICK
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        while time.monotonic() < deadline:  # keep the stream open for the receipts
            await asyncio.sleep(0.5)
            yield pb2.ClientMessage(client_id=self.client_id, message_id=f"{self.client_id}-hb-{time.monotonic()}",
                                    heartbeat=pb2.HeartbeatUpdate())

    def latencies(self) -> list[float]:
        return sorted(self.receipt_after.values())
