"""The load generator: thousands of simulated bots in one asyncio process, over a few channels per replica.

The harness runs `python -m bench.fleet '<json spec>'` and talks to it in JSON lines: one request on
stdin, one answer on stdout (see Fleet.handle for the operations). A bot is one ConnectClient call
driven with call.write()/call.read() (no per-bot channel, generator or queue): it registers, acks
every command at once, heartbeats every `heartbeat` seconds, and when its stream ends it reconnects
to another live replica after a jittered pause. The process exits when stdin closes, on `close`,
or after `max_seconds` whatever happens.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

CONNECT_METHOD = "/crypto.CryptoStreamingService/ConnectClient"
ACTIVE = common_pb2.CLIENT_STATUS_ACTIVE
MIX = ("wallet_update", "transaction", "heartbeat", "wallet_update", "transaction",
       "heartbeat", "wallet_update", "transaction", "heartbeat", "wallet_update")  # 4 : 3 : 3
SYMBOLS = ("BTC", "ETH", "USDT", "SOL")


@dataclass(frozen=True)
class Spec:
    targets: list[str]
    channels: int = 4  # per target
    reconnect: tuple[float, float] = (0.05, 0.25)
    heartbeat: float = 30.0
    max_seconds: float = 1800.0
    track: bool = False  # keep every received command_id (failover / rollout accounting)
    receipts: bool = False  # register with wants_receipts and time every message until its MessageReceipt
    key_secret: str = ""  # with CRYPTO_AUTH on: each bot sends bot_key(key_secret, client_id) as x-api-key

    @classmethod
    def parse(cls, raw: str) -> Spec:
        data = json.loads(raw)
        data["reconnect"] = tuple(data.get("reconnect", cls.reconnect))
        return cls(**data)


@dataclass(eq=False, slots=True)
class Bot:
    client_id: str
    target: str
    call: Any = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    seq: int = 0
    next_heartbeat: float = 0.0
    ended_at: float = 0.0  # monotonic time the last stream ended, 0 while connected
    connects: int = 0
    outages: list[float] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    unreceipted: dict[str, float] | None = None  # message_id -> monotonic send time, with receipts on

    def message_id(self) -> str:
        self.seq += 1
        return f"{self.client_id}:{self.seq}"

    async def write(self, message: pb2.ClientMessage) -> bool:
        call = self.call
        if call is None:
            return False
        async with self.lock:
            try:
                await call.write(message)
                return True
            except Exception:  # the stream ended under us; the reader sees why
                return False


class Channels:
    """A few channels per target, each with its own TCP connection (local subchannel pool)."""

    def __init__(self, per_target: int) -> None:
        self.per_target = per_target
        self._calls: dict[str, list[grpc.aio.StreamStreamMultiCallable]] = {}
        self._channels: list[grpc.aio.Channel] = []

    def connect_method(self, target: str, index: int) -> grpc.aio.StreamStreamMultiCallable:
        if target not in self._calls:
            self._calls[target] = [self._open(target, i) for i in range(self.per_target)]
        return self._calls[target][index % self.per_target]

    def _open(self, target: str, i: int) -> grpc.aio.StreamStreamMultiCallable:
        options = [("grpc.use_local_subchannel_pool", 1), ("bench.channel", i),
                   ("grpc.keepalive_time_ms", 20_000), ("grpc.http2.max_pings_without_data", 0)]
        channel = grpc.aio.insecure_channel(target, options=options)
        self._channels.append(channel)
        return channel.stream_stream(CONNECT_METHOD, request_serializer=pb2.ClientMessage.SerializeToString,
                                     response_deserializer=pb2.DjangoCommand.FromString)

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._channels), return_exceptions=True)


def bot_key(secret: str, client_id: str) -> str:
    """A bench bot's API key, derived so the harness can store its hash without telling the fleet each key."""
    return "ck_" + hashlib.sha256(f"{secret}:{client_id}".encode()).hexdigest()


def first_message(bot: Bot, receipts: bool = False) -> pb2.ClientMessage:
    register = pb2.ClientRegistration(client_name=bot.client_id, client_type="bench", version="1",
                                      wants_receipts=receipts)
    return pb2.ClientMessage(client_id=bot.client_id, message_id=bot.message_id(), register=register)


def heartbeat(bot: Bot) -> pb2.ClientMessage:
    return pb2.ClientMessage(client_id=bot.client_id, message_id=bot.message_id(), heartbeat=pb2.HeartbeatUpdate())


def ack_for(bot: Bot, command: pb2.DjangoCommand) -> pb2.ClientMessage:
    ack = common_pb2.CommandAck(command_id=command.command_id, success=True, message="ok", current_status=ACTIVE)
    return pb2.ClientMessage(client_id=bot.client_id, message_id=bot.message_id(), command_ack=ack)


def ingest_message(bot: Bot, kind: str, n: int) -> pb2.ClientMessage:
    msg = pb2.ClientMessage(client_id=bot.client_id, message_id=bot.message_id())
    msg.timestamp.GetCurrentTime()  # as real bots (and BotClient) do: the bot's order decides the latest report
    if kind == "wallet_update":
        msg.wallet_update.wallet_id = f"w{n % 4}"
        msg.wallet_update.symbol = SYMBOLS[n % 4]
        msg.wallet_update.balance_available = f"{n}.{n % 97:02d}"
        msg.wallet_update.balance_locked = "0.5"
    elif kind == "transaction":
        msg.transaction.transaction_id = f"t{n}"
        msg.transaction.type = "deposit"
        msg.transaction.symbol = SYMBOLS[n % 4]
        msg.transaction.amount = f"{n % 1000}.25"
        msg.transaction.status = "confirmed"
    else:
        msg.heartbeat.SetInParent()
    return msg


@dataclass
class IngestCount:
    messages: int = 0
    transactions: int = 0
    wallet_keys: set[tuple[str, int]] = field(default_factory=set)
    by_kind: Counter[str] = field(default_factory=Counter)


class Fleet:
    def __init__(self, spec: Spec) -> None:
        self.spec = spec
        self.targets = list(spec.targets)
        self.channels = Channels(spec.channels)
        self.bots: dict[str, Bot] = {}
        self.ends: Counter[str] = Counter()
        self.received = 0
        self.acks_sent = 0
        self.received_ids: list[str] = []
        self.receipt_latencies: list[float] = []  # seconds from a message's send to its receipt
        self.stopping = False
        self._connected_waiters: dict[str, asyncio.Future[None]] = {}
        self._ingesting = False
        self._t0 = time.monotonic()
        self._cpu0 = os.times()

    # one bot -------------------------------------------------------------------
    async def run_bot(self, bot: Bot, index: int) -> None:
        while not self.stopping:
            await self._one_stream(bot, index)
            if self.stopping or not self.targets:
                break
            await asyncio.sleep(random.uniform(*self.spec.reconnect))
            bot.target = self._next_target(bot.target)

    async def _one_stream(self, bot: Bot, index: int) -> None:
        metadata = (("x-api-key", bot_key(self.spec.key_secret, bot.client_id)),) if self.spec.key_secret else None
        call = self.channels.connect_method(bot.target, index)(metadata=metadata)
        bot.call = call
        status = "OK"
        try:
            async with bot.lock:
                await call.write(first_message(bot, self.spec.receipts))
            self._on_connected(bot)
            while (command := await call.read()) is not grpc.aio.EOF:
                if command.WhichOneof("command") == "receipt":
                    self._receipted(bot, command.receipt.message_ids)
                    continue
                self.received += 1
                if self.spec.track:
                    self.received_ids.append(command.command_id)
                if command.WhichOneof("command") != "ping" and await bot.write(ack_for(bot, command)):
                    self.acks_sent += 1
        except grpc.aio.AioRpcError as exc:
            status = exc.code().name
        except asyncio.CancelledError:
            call.cancel()
            raise
        except Exception as exc:  # write on a finished call, channel closed
            status = type(exc).__name__
        finally:
            bot.call = None
        self.ends[status] += 1
        if not bot.ended_at:
            bot.ended_at = time.monotonic()
        waiter = self._connected_waiters.pop(bot.client_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)  # a bot that could not connect must not stall a connect request

    def _receipted(self, bot: Bot, message_ids: Any) -> None:
        if bot.unreceipted is None:
            return
        now = time.monotonic()
        for message_id in message_ids:
            sent = bot.unreceipted.pop(message_id, None)
            if sent is not None:
                self.receipt_latencies.append(now - sent)

    def _on_connected(self, bot: Bot) -> None:
        now = time.monotonic()
        if bot.ended_at:
            bot.outages.append(now - bot.ended_at)
            bot.ended_at = 0.0
        bot.connects += 1
        bot.next_heartbeat = now + random.uniform(0.5, 1.0) * self.spec.heartbeat
        waiter = self._connected_waiters.pop(bot.client_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _next_target(self, failed: str) -> str:
        others = [t for t in self.targets if t != failed]
        return random.choice(others or self.targets)

    # fleet-wide ------------------------------------------------------------------
    async def heartbeats(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            if self._ingesting:
                continue
            now = time.monotonic()
            for bot in self.bots.values():
                if bot.call is not None and bot.next_heartbeat and now >= bot.next_heartbeat:
                    bot.next_heartbeat = now + self.spec.heartbeat
                    asyncio.create_task(bot.write(heartbeat(bot)))

    async def connect(self, prefix: str, start: int, count: int, rate: float, pin: str | None) -> dict[str, Any]:
        """Open `count` bots (bot i on targets[i % n] unless pinned); answer once each wrote its first message."""
        began = time.monotonic()
        loop = asyncio.get_running_loop()
        waiters = []
        for i in range(start, start + count):
            bot = Bot(f"{prefix}{i:06d}", pin or self.targets[i % len(self.targets)])
            self.bots[bot.client_id] = bot
            waiter = loop.create_future()
            self._connected_waiters[bot.client_id] = waiter
            waiters.append(waiter)
            bot.task = asyncio.create_task(self.run_bot(bot, i))
            if rate > 0 and (i - start + 1) % 50 == 0:
                await asyncio.sleep(max(0.0, began + (i - start + 1) / rate - time.monotonic()))
        await asyncio.wait(waiters, timeout=120)
        connected = sum(1 for i in range(start, start + count) if self.bots[f"{prefix}{i:06d}"].call is not None)
        return {"connected": connected, "requested": count, "seconds": round(time.monotonic() - began, 3)}

    async def ingest(self, per_bot: int, seconds: float, rate: float = 0.0) -> dict[str, Any]:
        """Every connected bot sends per_bot messages of the mix as fast as its stream takes them, or at
        `rate` messages/s each (at most `seconds`), the last one a transaction."""
        bots = [b for b in self.bots.values() if b.call is not None]
        count = IngestCount()
        self._ingesting = True
        began = time.monotonic()
        until = began + seconds
        if self.spec.receipts:
            self.receipt_latencies = []
            for bot in bots:
                bot.unreceipted = {}
        try:
            await asyncio.gather(*(self._ingest_one(bot, per_bot, until, count, rate) for bot in bots))
        finally:
            self._ingesting = False
        sent_at = time.monotonic()
        answer = {"bots": len(bots), "messages": count.messages, "transactions": count.transactions,
                  "wallet_keys": len(count.wallet_keys), "by_kind": dict(count.by_kind), "began": began,
                  "sent_at": sent_at, "send_seconds": round(sent_at - began, 3)}
        if self.spec.receipts:  # every message receipted (or 60 s): the receipt latencies are complete
            while any(b.unreceipted for b in bots) and time.monotonic() < sent_at + 60:
                await asyncio.sleep(0.02)
            answer.update(receipted_at=time.monotonic(), receipts=len(self.receipt_latencies),
                          unreceipted=sum(len(b.unreceipted or ()) for b in bots),
                          receipt_latencies=self.receipt_latencies)
        return answer

    async def _ingest_one(self, bot: Bot, per_bot: int, until: float, count: IngestCount, rate: float) -> None:
        n = 0
        began = time.monotonic() + random.uniform(0, 1 / rate) if rate else 0.0  # paced bots spread out
        while n < per_bot - 1 and time.monotonic() < until:
            if rate:
                await asyncio.sleep(max(0.0, began + n / rate - time.monotonic()))
            kind = MIX[n % len(MIX)]
            message = ingest_message(bot, kind, n)
            if bot.unreceipted is not None:
                bot.unreceipted[message.message_id] = time.monotonic()
            if not await bot.write(message):
                return
            count.messages += 1
            count.by_kind[kind] += 1
            if kind == "transaction":
                count.transactions += 1
            elif kind == "wallet_update":
                count.wallet_keys.add((bot.client_id, n % 4))
            n += 1
        final = ingest_message(bot, "transaction", n)
        final.transaction.transaction_id = "final"
        if bot.unreceipted is not None:
            bot.unreceipted[final.message_id] = time.monotonic()
        if await bot.write(final):
            count.messages += 1
            count.transactions += 1
            count.by_kind["transaction"] += 1

    def stats(self) -> dict[str, Any]:
        outages = [o for bot in self.bots.values() for o in bot.outages]
        worst = sorted((max(b.outages), b.client_id) for b in self.bots.values() if b.outages)[-5:]
        now = time.monotonic()
        down = [now - b.ended_at for b in self.bots.values() if b.ended_at]
        cpu = os.times()
        wall = now - self._t0
        return {
            "bots": len(self.bots), "connected": sum(1 for b in self.bots.values() if b.call is not None),
            "connects": sum(b.connects for b in self.bots.values()), "ends": dict(self.ends),
            "received": self.received, "acks_sent": self.acks_sent, "outages": outages,
            "worst_outages": [[round(s, 4), c] for s, c in reversed(worst)], "still_down": len(down),
            "longest_still_down": round(max(down, default=0.0), 4),
            "cpu_seconds": round(cpu.user + cpu.system - self._cpu0.user - self._cpu0.system, 3),
            "wall_seconds": round(wall, 3),
        }

    async def close(self) -> None:
        self.stopping = True
        tasks = [b.task for b in self.bots.values() if b.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.channels.close()

    async def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request["op"]
        if op == "connect":
            return await self.connect(request["prefix"], request.get("start", 0), request["count"],
                                      request.get("rate", 2000.0), request.get("pin"))
        if op == "targets":
            self.targets = list(request["targets"])
            return {"targets": self.targets}
        if op == "ingest":
            return await self.ingest(request["per_bot"], request["seconds"], request.get("rate", 0.0))
        if op == "stats":
            return self.stats()
        if op == "received_ids":
            return {"ids": self.received_ids}
        if op == "close":
            await self.close()
            return {"closed": True}
        raise ValueError(f"unknown op {op!r}")


async def serve(spec: Spec) -> None:
    fleet = Fleet(spec)
    loop = asyncio.get_running_loop()
    loop.call_later(spec.max_seconds, os._exit, 3)  # bounded whatever the harness does
    reader = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    heartbeats = asyncio.create_task(fleet.heartbeats())
    try:
        while line := await reader.readline():
            request = json.loads(line)
            try:
                answer = {"ok": True, **(await fleet.handle(request))}
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            sys.stdout.write(json.dumps(answer) + "\n")
            sys.stdout.flush()
            if request["op"] == "close":
                break
    finally:
        heartbeats.cancel()
        if not fleet.stopping:
            await fleet.close()


if __name__ == "__main__":
    asyncio.run(serve(Spec.parse(sys.argv[1])))
