"""Polling helpers: wait for a condition with a bound, never sleep a fixed time and hope."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


async def eventually(check: Callable[[], T | Awaitable[T]], timeout: float = 10.0,
                     message: str = "condition") -> T:
    """The first truthy result of `check`."""
    until = time.monotonic() + timeout
    while time.monotonic() < until:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.02)
    raise AssertionError(f"{message} not met within {timeout}s")
