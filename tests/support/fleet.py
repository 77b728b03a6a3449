"""Bots that reconnect elsewhere when a replica ends their stream, and a command load that keeps score."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field

import grpc

from .operator import Operator
from .rawbot import RawBot, heartbeat


@dataclass
class RoamingBot:
    """Keeps one stream open across the given targets, moving on when a stream ends."""

    targets: list[str]
    client_id: str
    api_key: str
    received: list[str] = field(default_factory=list)
    connects: int = 0
    _task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        index = random.randrange(len(self.targets))
        while True:
            bot = RawBot(self.targets[index % len(self.targets)], self.client_id, self.api_key)
            await bot.__aenter__()
            bot.send(heartbeat(self.client_id))
            self.connects += 1
            try:
                await bot.task
            finally:
                self.received.extend(c.command_id for c in bot.commands)
                await bot.__aexit__()
            index += 1
            await asyncio.sleep(random.uniform(0.05, 0.3))

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


@dataclass
class CommandLoad:
    """ExecuteCommandSync calls in a loop; every call's ending is recorded."""

    operator: Operator
    targets: list[str]
    clients: list[str]
    outcomes: Counter = field(default_factory=Counter)
    acked: list[str] = field(default_factory=list)
    unexplained: list[str] = field(default_factory=list)
    _n: int = 0

    async def run(self, stop: asyncio.Event, concurrency: int = 4) -> None:
        await asyncio.gather(*(self._worker(stop) for _ in range(concurrency)))

    async def _worker(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._n += 1
            command_id = f"load-{self._n}"
            await self._one(random.choice(self.targets), random.choice(self.clients), command_id)

    async def _one(self, target: str, client_id: str, command_id: str) -> None:
        try:
            ack = await self.operator.execute(target, client_id, command_id, timeout=10)
        except grpc.aio.AioRpcError as exc:
            self.outcomes[f"rpc:{exc.code().name}"] += 1
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                self.unexplained.append(command_id)
            return
        if ack.success:
            self.outcomes["acked"] += 1
            self.acked.append(command_id)
        elif ack.error:
            self.outcomes["error:" + ack.error.split(":")[0][:40]] += 1
        else:
            self.unexplained.append(command_id)
