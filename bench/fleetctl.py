"""The harness's handle on the load-generator process (bench/fleet.py): JSON lines over its stdin/stdout."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from .procs import ROOT, guarded


class FleetError(RuntimeError):
    pass


class FleetProcess:
    def __init__(self, targets: list[str], channels: int = 4, track: bool = False,
                 reconnect: tuple[float, float] = (0.05, 0.25), max_seconds: float = 1800.0,
                 receipts: bool = False, key_secret: str = "") -> None:
        self.spec = {"targets": targets, "channels": channels, "track": track, "reconnect": list(reconnect),
                     "max_seconds": max_seconds, "receipts": receipts, "key_secret": key_secret}
        self.process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self) -> FleetProcess:
        args = [sys.executable, "-W", "ignore", "-m", "bench.fleet", json.dumps(self.spec)]
        self.process = await asyncio.create_subprocess_exec(*guarded(args), cwd=ROOT, stdin=asyncio.subprocess.PIPE,
                                                            stdout=asyncio.subprocess.PIPE, limit=1 << 26)
        return self

    async def request(self, op: str, timeout: float = 300.0, **params: Any) -> dict[str, Any]:
        assert self.process is not None and self.process.stdin and self.process.stdout
        async with self._lock:
            self.process.stdin.write((json.dumps({"op": op, **params}) + "\n").encode())
            await self.process.stdin.drain()
            line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise FleetError(f"load generator exited (code {self.process.returncode}) during {op}")
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise FleetError(f"load generator {op} failed: {answer.get('error')}")
        return answer

    async def connect(self, prefix: str, count: int, start: int = 0, rate: float = 2000.0,
                      pin: str | None = None) -> dict[str, Any]:
        return await self.request("connect", prefix=prefix, start=start, count=count, rate=rate, pin=pin)

    async def set_targets(self, targets: list[str]) -> None:
        await self.request("targets", targets=targets)

    async def stats(self) -> dict[str, Any]:
        return await self.request("stats")

    async def close(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        try:
            await self.request("close", timeout=30)
            await asyncio.wait_for(self.process.wait(), 10)
        except (FleetError, TimeoutError, ConnectionError, BrokenPipeError):
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
