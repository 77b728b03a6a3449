"""Command records (the audit trail of every command) written off the hot path.

Writes go through one bounded background queue; a full queue drops the write with a
log line rather than slowing a command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from google.protobuf.json_format import MessageToDict

from ..generated import common_pb2
from ..generated import crypto_streaming_pb2 as pb2
from .bus.outcomes import Delivery

logger = logging.getLogger(__name__)
Job = Callable[[], Awaitable[Any]]


class CommandJournal:
    """Serial writer of CommandRecord rows; update_or_create makes the order of writers irrelevant."""

    def __init__(self, limit: int = 10_000) -> None:
        self._queue: asyncio.Queue[Job] = asyncio.Queue(limit)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-journal")

    async def close(self, timeout: float = 5.0) -> None:
        """Flush what is queued (bounded), then stop."""
        try:
            await asyncio.wait_for(self._queue.join(), timeout)
        except TimeoutError:
            logger.warning("journal.flush_incomplete left=%d", self._queue.qsize())
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _put(self, job: Job) -> None:
        try:
            self._queue.put_nowait(job)
        except asyncio.QueueFull:
            logger.warning("journal.dropped reason=queue_full")

    async def _run(self) -> None:
        while True:
            job = await self._queue.get()
            try:
                await job()
            except Exception as exc:
                logger.warning("journal.write_failed error=%s", type(exc).__name__)
            finally:
                self._queue.task_done()

    def accepted(self, client_id: str, command: pb2.DjangoCommand, sent_by: str, replica: str, wait: bool) -> None:
        defaults = {"client_id": client_id, "kind": command.WhichOneof("command") or "",
                    "payload": MessageToDict(command, preserving_proto_field_name=True),
                    "sent_by": sent_by, "accepted_by": replica, "wait_for_ack": wait}
        self._put(lambda: _upsert(command.command_id, defaults))

    def delivery(self, command_id: str, delivery: Delivery) -> None:
        """Where the command went and when it reached the stream (or why it never did)."""
        at = datetime.fromtimestamp(delivery.at, UTC)
        defaults: dict[str, Any] = (
            {"outcome": "delivered", "routed_to": delivery.routed_to, "delivered_at": at} if delivery.delivered
            else {"outcome": "failed", "ack_error": delivery.error, "finished_at": at})
        self._put(lambda: _upsert(command_id, defaults, keep_final=delivery.delivered))

    def outcome(self, ack: common_pb2.CommandAck, timed_out: bool) -> None:
        outcome = "acked" if ack.success else ("timed_out" if timed_out else "failed")
        defaults = {"outcome": outcome, "ack_success": ack.success, "ack_message": ack.message,
                    "ack_error": ack.error, "finished_at": datetime.now(UTC)}
        self._put(lambda: _upsert(ack.command_id, defaults))


async def _upsert(command_id: str, defaults: dict[str, Any], keep_final: bool = False) -> None:
    from apps.crypto.models import CommandRecord

    if keep_final:  # a delivery note must not overwrite an ack written first, but still says where it went
        updated = await CommandRecord.objects.filter(command_id=command_id, finished_at__isnull=True).aupdate(
            **defaults)
        route = {name: value for name, value in defaults.items() if name != "outcome"}
        if updated or await CommandRecord.objects.filter(command_id=command_id).aupdate(**route):
            return
    await CommandRecord.objects.aupdate_or_create(command_id=command_id, defaults=defaults)
