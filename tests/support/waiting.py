"""Polling helpers: wait for a condition with a bound, never sleep a fixed time and hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(check: Callable[[], bool | Awaitable[bool]], timeout: float = 10.0,
                     message: str = "condition") -> None:
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message} not met within {timeout}s")
