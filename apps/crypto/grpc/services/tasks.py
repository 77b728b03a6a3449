"""One owner for a replica's background tasks (after aio-libs/aiojobs' Scheduler, much smaller).

Why: a task nobody holds can be garbage-collected mid-flight, and a task nobody awaits dies silently.
Every background task of a replica is spawned through a TaskOwner, which keeps it, logs it if it
crashes, and ends it on close. A part that must end its own tasks at its own point of the shutdown
takes a scope(): its tasks are ended by the scope's close(), and still by the owner's close() if left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

logger = logging.getLogger(__name__)
T = TypeVar("T")
Spawn = Callable[[Coroutine[Any, Any, T], str], "asyncio.Task[T]"]  # TaskOwner.spawn, or spawn_task


def spawn_task(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
    """A Spawn for a part used on its own (tests): a plain task, owned by nobody."""
    return asyncio.create_task(coro, name=name)


class TaskOwner:
    """Keeps the tasks it spawned until they end; close() ends the ones still running."""

    def __init__(self, name: str = "replica", parent: TaskOwner | None = None) -> None:
        self.name = name
        self._parent = parent
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def scope(self, name: str) -> TaskOwner:
        """An owner for one part's tasks; they are tracked here too, so nothing outlives this owner."""
        return TaskOwner(f"{self.name}.{name}", self)

    def spawn(self, coro: Coroutine[Any, Any, T], name: str = "", *, eager: bool = False) -> asyncio.Task[T]:
        """Run `coro` as a tracked task; `eager` runs it up to its first suspension right now."""
        loop = asyncio.get_running_loop()
        task = asyncio.Task(coro, loop=loop, name=name or None, eager_start=eager)
        self._track(task)
        return task

    def _track(self, task: asyncio.Task[Any]) -> None:
        owners = list(self._chain())
        for owner in owners:
            owner._tasks.add(task)
        task.add_done_callback(lambda done: self._done(done, owners))

    def _chain(self) -> Iterator[TaskOwner]:
        owner: TaskOwner | None = self
        while owner is not None:
            yield owner
            owner = owner._parent

    def _done(self, task: asyncio.Task[Any], owners: list[TaskOwner]) -> None:
        """Forget the task; log a crash here, instead of "exception was never retrieved" at GC."""
        for owner in owners:
            owner._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("task.crashed owner=%s task=%s error=%s", self.name, task.get_name(),
                         type(exc).__name__, exc_info=exc)

    async def close(self, grace: float | None = 0.0) -> None:
        """Let the tasks end on their own for `grace` seconds (None: as long as they take), then cancel
        the rest and wait for them. Tasks spawned meanwhile are included."""
        while self._tasks:
            tasks = set(self._tasks)
            if grace is None or grace > 0:
                await asyncio.wait(tasks, timeout=grace)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._tasks -= tasks
