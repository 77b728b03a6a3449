"""What does publishing cost a stream? publish_client_message with publishing on vs off.

    python bench/centrifugo_publish.py [--count 100000] [--chunk 1000] [--repeat 3] [--messages command]

The publisher runs on this process's event loop, as in a replica; the fake Centrifugo runs in a
child process so its work does not count against the publisher.
Scenarios:
  off       NullPublisher (CENTRIFUGO_API_URL unset)
  on        CentrifugoPublisher -> fake Centrifugo. Publish --chunk calls, let the sender
            drain, repeat. Reports the caller's cost per call, the end-to-end delivery rate,
            and the lateness of a 1 ms ticker on the loop (what every stream on the replica
            feels while the sender builds and sends a batch; max also catches OS preemption).
  on-hung   the fake never answers: the queue is full and every call evicts the oldest.
  sender    CPU the sender task spends per publication on the loop (envelope + JSON encode of
            a batch), measured without any network: the stall one batch imposes on streams.
  cpu       like `on` without the ticker: the whole process's CPU (publish calls, sender task,
            aiohttp, reply parsing) per delivered publication, i.e. what publishing costs a replica.
--messages wallet publishes WalletUpdate client messages; --messages command publishes what one
operator command costs: the DjangoCommand (publish_command) and the bot's CommandAck client message.
Times are CPU time (thread or process), so other work on a shared machine inflates them less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.message import Message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb  # noqa: E402
from apps.crypto.publishing import (  # noqa: E402
    CentrifugoPublisher,
    NullPublisher,
    Publisher,
    PublisherConfig,
    PublisherStats,
)
from apps.crypto.publishing.envelope import Kind, build_envelope, channels_for  # noqa: E402
from apps.crypto.publishing.wire import batch_payload, broadcast_command  # noqa: E402

Publication = tuple[Kind, str, Message]  # what to publish: kind, client id, message


@dataclass(frozen=True)
class Result:
    name: str
    calls: int
    seconds_in_calls: float
    delivered_per_s: float | None = None
    stall_ms: tuple[float, ...] | None = None  # loop lateness p50, p99, max
    stats: PublisherStats | None = None

    @property
    def rate(self) -> float:
        return self.calls / self.seconds_in_calls

    @property
    def micros(self) -> float:
        return self.seconds_in_calls / self.calls * 1e6


class FakeProcess:
    """FakeCentrifugo in a child process (its CPU and GIL stay out of the measurement)."""

    API_KEY = "bench-api-key"

    def __init__(self) -> None:
        self.url = ""
        self._process: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> "FakeProcess":
        self._process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.fake_centrifugo", self.API_KEY,
            cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        assert self._process.stdout is not None
        self.url = (await self._process.stdout.readline()).decode().strip()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.send("quit")
        assert self._process is not None
        await self._process.wait()

    async def send(self, line: str) -> None:
        assert self._process is not None and self._process.stdin is not None
        self._process.stdin.write(line.encode() + b"\n")
        await self._process.stdin.drain()


def wallet_updates(count: int) -> list[Publication]:
    messages: list[Publication] = []
    for n in range(count):
        message = pb.ClientMessage(client_id=f"bot-{n % 50}", message_id=f"m-{n}")
        message.timestamp.GetCurrentTime()
        update = message.wallet_update
        update.wallet_id, update.symbol = f"w-{n % 7}", "BTC"
        update.balance_available, update.balance_locked = "0.12345678", "1.00000000"
        messages.append((Kind.CLIENT_MESSAGE, message.client_id, message))
    return messages


def commands_and_acks(count: int) -> list[Publication]:
    """What one operator command publishes: the command as written to the bot, then the bot's ack."""
    messages: list[Publication] = []
    for n in range(count // 2):
        client_id = f"bot-{n % 50}"
        command = pb.DjangoCommand(command_id=f"cmd-{n:08d}-5f0e2c1a", ping=pb.PingCommand(sequence=n))
        command.timestamp.GetCurrentTime()
        reply = pb.ClientMessage(client_id=client_id, message_id=f"m-{n}")
        reply.timestamp.GetCurrentTime()
        ack = reply.command_ack
        ack.command_id, ack.success, ack.message, ack.current_status = command.command_id, True, "pong", 1
        ack.timestamp.GetCurrentTime()
        messages += [(Kind.COMMAND, client_id, command), (Kind.CLIENT_MESSAGE, client_id, reply)]
    return messages


async def publish_chunks(publisher: Publisher, messages: list[Publication], chunk: int, drain: bool) -> float:
    """CPU seconds spent inside publish calls only; between chunks the loop runs (and optionally drains)."""
    spent = 0.0
    publish: dict[Kind, Callable[[str, Message], None]] = {
        Kind.CLIENT_MESSAGE: publisher.publish_client_message, Kind.COMMAND: publisher.publish_command,
        Kind.ACK: publisher.publish_ack,
    }
    for start in range(0, len(messages), chunk):
        began = time.thread_time()
        for kind, client_id, message in messages[start:start + chunk]:
            publish[kind](client_id, message)
        spent += time.thread_time() - began
        await asyncio.sleep(0)
        while drain and publisher.stats().queued:
            await asyncio.sleep(0.001)
    return spent


@contextmanager
def stall_meter() -> Iterator[list[float]]:
    """Lateness of a 1 ms ticker on this loop, in seconds, one sample per tick (yielded list)."""
    samples: list[float] = []

    async def tick() -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.001
            await asyncio.sleep(0.001)
            samples.append(loop.time() - due)

    task = asyncio.get_running_loop().create_task(tick())
    try:
        yield samples
    finally:
        task.cancel()


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def run_off(messages: list[Publication], chunk: int) -> Result:
    spent = await publish_chunks(NullPublisher(), messages, chunk, drain=False)
    return Result("off (NullPublisher)", len(messages), spent)


async def run_on(messages: list[Publication], chunk: int) -> Result:
    async with FakeProcess() as server:
        publisher = CentrifugoPublisher(PublisherConfig(api_url=server.url, api_key=server.API_KEY), "bench")
        await publisher.start()
        began = time.perf_counter()
        with stall_meter() as lateness:
            spent = await publish_chunks(publisher, messages, chunk, drain=True)
            while publisher.stats().published + publisher.stats().failed < len(messages):
                await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - began
        await publisher.close()
    stats = publisher.stats()
    stalls = tuple(percentile(lateness, q) * 1e3 for q in (0.5, 0.99, 1.0))
    return Result("on (fake Centrifugo)", len(messages), spent, stats.published / elapsed, stalls, stats)


async def run_hung(messages: list[Publication], chunk: int) -> Result:
    async with FakeProcess() as server:
        await server.send("slow 3600")
        config = PublisherConfig(api_url=server.url, api_key=server.API_KEY, close_timeout=0.1)
        publisher = CentrifugoPublisher(config, "bench")
        await publisher.start()
        spent = await publish_chunks(publisher, messages, chunk, drain=False)
        stats = publisher.stats()
        await server.send("release")
        await publisher.close()
    return Result("on-hung (queue full, drop-oldest)", len(messages), spent, stats=stats)


async def run_sender_cpu(messages: list[Publication], chunk: int) -> Result:
    """Envelope + channel names (cached per client, as the sender does) + batch JSON, per batch_size slice."""
    config = PublisherConfig()
    channels: dict[str, list[str]] = {}
    began = time.thread_time()
    for start in range(0, len(messages), config.batch_size):
        commands = []
        for seq, (kind, client_id, message) in enumerate(messages[start:start + config.batch_size], start):
            envelope = build_envelope(kind, client_id, message, replica="bench", seq=seq, received_at=0.0)
            if client_id not in channels:
                channels[client_id] = channels_for(client_id, config.channel_pattern, config.all_channel)
            commands.append(broadcast_command(channels[client_id], envelope, f"bench:{seq}"))
        json.dumps(batch_payload(commands))  # what aiohttp does with the sender's batch
    return Result("sender cpu per publication", len(messages), time.thread_time() - began)


async def run_cpu(messages: list[Publication], chunk: int) -> Result:
    """Process CPU from the first publish until all are delivered, over the count: the replica's whole cost."""
    async with FakeProcess() as server:
        publisher = CentrifugoPublisher(PublisherConfig(api_url=server.url, api_key=server.API_KEY), "bench")
        await publisher.start()
        began = time.process_time()
        await publish_chunks(publisher, messages, chunk, drain=True)
        while publisher.stats().published + publisher.stats().failed < len(messages):
            await asyncio.sleep(0.005)
        spent = time.process_time() - began
        await publisher.close()
    return Result("cpu (whole process) per publication", len(messages), spent, stats=publisher.stats())


def report(results: dict[str, list[Result]]) -> None:
    print(f"{'scenario':36} {'calls/s':>12} {'us/call':>8} {'delivered/s':>12} {'loop lag ms p50/p99/max':>24}")
    for name, runs in results.items():
        middle = sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
        delivered = [r.delivered_per_s for r in runs if r.delivered_per_s is not None]
        shown_delivered = f"{statistics.median(delivered):12,.0f}" if delivered else f"{'-':>12}"
        lag = "/".join(f"{v:.1f}" for v in middle.stall_ms) if middle.stall_ms else "-"
        print(f"{name:36} {middle.rate:12,.0f} {middle.micros:8.2f} {shown_delivered} {lag:>24}")
        if middle.stats is not None:
            print(f"{'':36} {middle.stats}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--messages", choices=("wallet", "command"), default="wallet")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    messages = (wallet_updates if args.messages == "wallet" else commands_and_acks)(args.count)
    results: dict[str, list[Result]] = {}
    for _ in range(args.repeat):
        for scenario in (run_off, run_on, run_hung, run_sender_cpu, run_cpu):
            result = await scenario(messages, args.chunk)
            results.setdefault(result.name, []).append(result)
    report(results)


if __name__ == "__main__":
    asyncio.run(main())
