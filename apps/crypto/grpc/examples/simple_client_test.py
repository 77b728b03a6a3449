"""A runnable demo bot answering all five command kinds.

    python -m apps.crypto.grpc.examples.simple_client_test --target localhost:50051 --client-id bot-1 --api-key KEY

Then, from another shell: `python manage.py send_command bot-1 ping --wait`.

A command_id the bot has already executed (the server re-sends a command with `retry=true` after the
replica holding the stream was lost) is not run again: the bot acks it again with the first ack.

The demo asks for receipts (`--no-receipts` turns them off): every message it sends is kept until the
server confirms it is stored and is resent after a reconnect. Every `--report-every` seconds it logs
how many messages await a receipt (`demo.outbox unreceipted=N`); on SIGINT/SIGTERM it waits up to
`--drain` seconds for the last receipts before it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from google.protobuf.message import Message

from apps.crypto.grpc.generated import common_pb2
from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2

from .bot_client import OUTBOX_LIMIT, REMEMBER_COMMANDS, BotClient, BotRejected, CommandHandler, command_ack

logger = logging.getLogger("demo_bot")

# What this demo "holds": symbol -> (available, locked).
DEMO_BALANCES: dict[str, tuple[Decimal, Decimal]] = {
    "BTC": (Decimal("0.5"), Decimal("0")),
    "ETH": (Decimal("3.25"), Decimal("0.75")),
    "USDT": (Decimal("1500"), Decimal("0")),
}


@dataclass
class DemoBot:
    """The bot's own state; its handlers read and change it and report through `send`."""

    send: Callable[[Message], Awaitable[None]] | None = None
    paused: bool = False
    balances: dict[str, tuple[Decimal, Decimal]] = field(default_factory=lambda: dict(DEMO_BALANCES))

    @property
    def status(self) -> common_pb2.ClientStatus:
        return common_pb2.CLIENT_STATUS_PAUSED if self.paused else common_pb2.CLIENT_STATUS_ACTIVE

    def handlers(self) -> dict[str, CommandHandler]:
        return {
            "pause": self.on_pause,
            "resume": self.on_resume,
            "ping": self.on_ping,
            "sync_wallets": self.on_sync_wallets,
            "request_status": self.on_request_status,
        }

    async def on_pause(self, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        self.paused = True
        return command_ack(message=f"paused: {command.pause.reason or 'no reason given'}", status=self.status)

    async def on_resume(self, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        self.paused = False
        note = command.resume.message
        return command_ack(message=f"resumed: {note}" if note else "resumed", status=self.status)

    async def on_ping(self, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        return command_ack(message="pong", status=self.status)

    async def on_sync_wallets(self, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        """Report each requested wallet (all when none are named), then ack."""
        symbols = list(command.sync_wallets.symbols) or sorted(self.balances)
        unknown = [symbol for symbol in symbols if symbol not in self.balances]
        if unknown:
            return command_ack(False, error=f"unknown symbols: {', '.join(unknown)}", status=self.status)
        for symbol in symbols:
            await self._report_wallet(symbol)
        return command_ack(message=f"synced {len(symbols)} wallets", status=self.status)

    async def _report_wallet(self, symbol: str) -> None:
        available, locked = self.balances[symbol]
        update = pb2.WalletUpdate(wallet_id=f"demo-{symbol.lower()}", symbol=symbol,
                                  balance_available=str(available), balance_locked=str(locked))
        update.last_sync.GetCurrentTime()
        assert self.send is not None, "DemoBot.send must be set before commands arrive"
        await self.send(update)

    async def on_request_status(self, command: pb2.DjangoCommand) -> common_pb2.CommandAck:
        message = "paused" if self.paused else "running"
        if command.request_status.include_stats:
            message += f" wallets={len(self.balances)}"
        return command_ack(message=message, status=self.status)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Demo bot for CryptoStreamingService")
    parser.add_argument("--target", default=os.environ.get("CRYPTO_GRPC_TARGET", "localhost:50051"))
    parser.add_argument("--client-id", required=True)
    parser.add_argument("--api-key", default=os.environ.get("CRYPTO_API_KEY"),
                        help="key from 'manage.py create_client_key' (default: CRYPTO_API_KEY)")
    parser.add_argument("--heartbeat", type=float, default=30.0, help="seconds between heartbeats")
    parser.add_argument("--remember-commands", type=int, default=REMEMBER_COMMANDS,
                        help="executed command_ids remembered to ack a re-delivery without running it again")
    parser.add_argument("--no-receipts", dest="receipts", action="store_false",
                        help="do not ask for receipts (no outbox, nothing resent after a reconnect)")
    parser.add_argument("--outbox-limit", type=int, default=OUTBOX_LIMIT,
                        help="messages awaiting a receipt before sending waits")
    parser.add_argument("--report-every", type=float, default=30.0,
                        help="seconds between 'demo.outbox unreceipted=N' log lines")
    parser.add_argument("--drain", type=float, default=5.0,
                        help="seconds to wait for the last receipts when asked to stop")
    args = parser.parse_args(argv)
    if args.report_every <= 0 or args.drain < 0 or args.outbox_limit < 1:
        parser.error("--report-every must be > 0, --drain >= 0 and --outbox-limit >= 1")
    return args


def build_bot(args: argparse.Namespace) -> tuple[BotClient, DemoBot]:
    demo = DemoBot()
    registration = pb2.ClientRegistration(client_name=f"demo {args.client_id}", client_type="demo", version="1.0")
    bot = BotClient(args.target, args.client_id, args.api_key, registration=registration,
                    heartbeat_interval=args.heartbeat, handlers=demo.handlers(),
                    remember_commands=args.remember_commands, receipts=args.receipts,
                    outbox_limit=args.outbox_limit)
    demo.send = bot.send
    return bot, demo


def log_outbox(bot: BotClient) -> None:
    logger.info("demo.outbox unreceipted=%d receipted=%d resent=%d",
                bot.unreceipted, bot.messages_receipted, bot.messages_resent)


async def report_outbox(bot: BotClient, every: float) -> None:
    """How many messages await a receipt, every `every` seconds until cancelled."""
    while True:
        await asyncio.sleep(every)
        log_outbox(bot)


async def drain_and_stop(bot: BotClient, drain: float) -> None:
    """Give the last receipts up to `drain` seconds, then stop; what is still unreceipted is logged."""
    if not await bot.all_receipted(drain):
        logger.warning("demo.stopping_unreceipted unreceipted=%d", bot.unreceipted)
    bot.request_stop()


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    bot, _ = build_bot(args)
    loop = asyncio.get_running_loop()
    stopping: list[asyncio.Task[None]] = []

    def on_signal() -> None:
        if stopping:  # a second signal: stop now
            bot.request_stop()
        else:
            stopping.append(loop.create_task(drain_and_stop(bot, args.drain)))

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, on_signal)
    reporter = loop.create_task(report_outbox(bot, args.report_every)) if args.receipts else None
    try:
        await bot.run()
    except BotRejected as exc:
        logger.error("demo.rejected code=%s details=%s", exc.code.name, exc.details)
        return 2
    finally:
        for task in (reporter, *stopping):
            if task is not None:
                task.cancel()
        if args.receipts:
            log_outbox(bot)
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(asyncio.run(main()))
