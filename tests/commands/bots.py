"""Running a BotClient (with the demo bot's handlers) inside a test, always stopped afterwards."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from apps.crypto.grpc.examples.bot_client import BotClient
from apps.crypto.grpc.examples.reconnect import Backoff
from apps.crypto.grpc.examples.simple_client_test import DemoBot

FAST_BACKOFF = Backoff(base=0.05, cap=0.2)


def demo_bot(target: str, client_id: str, api_key: str | None, **options: Any) -> tuple[BotClient, DemoBot]:
    demo = DemoBot()
    options.setdefault("backoff", FAST_BACKOFF)
    options.setdefault("handlers", demo.handlers())
    bot = BotClient(target, client_id, api_key, **options)
    demo.send = bot.send
    return bot, demo


@asynccontextmanager
async def running_bot(bot: BotClient, connect_timeout: float | None = 5.0) -> AsyncIterator[asyncio.Task[None]]:
    """Start bot.run() and wait until connected (unless connect_timeout is None); stop it on exit."""
    task = asyncio.create_task(bot.run())
    try:
        if connect_timeout is not None:
            await wait_connected(bot, task, connect_timeout)
        yield task
    finally:
        await bot.stop()
        await asyncio.gather(task, return_exceptions=True)


async def wait_connected(bot: BotClient, task: asyncio.Task[None], timeout: float = 5.0) -> None:
    """bot.connected, but a run() that already failed raises its error instead of timing out."""
    connected = asyncio.create_task(bot.connected.wait())
    done, _ = await asyncio.wait([connected, task], timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    connected.cancel()
    if task in done:
        task.result()
        raise AssertionError("bot.run() returned before connecting")
    if connected not in done:
        raise AssertionError(f"bot {bot.client_id} not connected within {timeout}s")
