"""TaskOwner keeps, reports and ends a replica's background tasks."""

from __future__ import annotations

import asyncio
import logging

from apps.crypto.grpc.services.tasks import TaskOwner


async def test_close_cancels_running_tasks_of_the_scope_and_the_owner_forgets_them():
    owner = TaskOwner("r")
    scope = owner.scope("bus")
    task = scope.spawn(asyncio.sleep(60), "sleeper")
    assert len(owner) == len(scope) == 1
    await scope.close()
    assert task.cancelled() and len(owner) == len(scope) == 0


async def test_close_with_grace_lets_tasks_finish_first():
    owner = TaskOwner()
    task = owner.spawn(asyncio.sleep(0.05, "done"), "short")
    await owner.close(grace=None)
    assert task.result() == "done"


async def test_a_crashed_task_is_logged_once_with_its_owner(caplog):
    async def boom() -> None:
        raise ValueError("broken")

    owner = TaskOwner("r")
    owner.scope("journal").spawn(boom(), "journal-loop")
    with caplog.at_level(logging.ERROR, logger="apps.crypto.grpc.services.tasks"):
        await asyncio.sleep(0.01)
    crashes = [r for r in caplog.records if r.getMessage().startswith("task.crashed")]
    assert len(crashes) == 1 and "owner=r.journal task=journal-loop error=ValueError" in crashes[0].getMessage()


async def test_eager_spawn_runs_until_the_first_await_at_once():
    started = []

    async def work() -> None:
        started.append(True)
        await asyncio.sleep(0)

    TaskOwner().spawn(work(), "eager", eager=True)
    assert started == [True]
