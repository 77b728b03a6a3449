"""The interface the stream code calls, its counters, and the do-nothing implementation used when off."""

from __future__ import annotations

from dataclasses import dataclass
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, runtime_checkable

# Starts the sender task: the replica's TaskOwner.spawn, so the replica owns it (asyncio.create_task when standalone).
Spawn = Callable[[Coroutine[Any, Any, None], str], "asyncio.Task[None]"]


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """Monotonic counters (publications, not HTTP requests) plus the current queue depth.

    published: reached every target channel; failed: given up on (rejected, retries exhausted,
    API key refused); dropped: never sent (queue full, shutdown, published after close).
    """

    published: int = 0
    failed: int = 0
    dropped: int = 0
    queued: int = 0


@runtime_checkable
class Publisher(Protocol):
    """publish_* never block and never raise into the stream; delivery happens in the background.

    publish_* keep their own copy of the message (a C-level CopyFrom, ~0.3 µs), so a caller may
    reuse or change it afterwards. The service's callers do not, but the copy costs ~2 % of a
    publication's CPU, too little to trade for a rule that no test could enforce across packages.
    """

    def publish_client_message(self, client_id: str, message: Any) -> None: ...

    def publish_command(self, client_id: str, command: Any) -> None: ...

    def publish_ack(self, client_id: str, ack: Any) -> None: ...

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def stats(self) -> PublisherStats: ...


class NullPublisher:
    """Publishing is off (no CENTRIFUGO_API_URL / CENTRIFUGO_API_KEY): every call is a no-op."""

    _STATS = PublisherStats()

    def publish_client_message(self, client_id: str, message: Any) -> None:
        return None

    def publish_command(self, client_id: str, command: Any) -> None:
        return None

    def publish_ack(self, client_id: str, ack: Any) -> None:
        return None

    async def start(self) -> None:
        return None

    def begin_close(self) -> None:
        return None

    async def wait_closed(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def stats(self) -> PublisherStats:
        return self._STATS
