"""Command records (the audit trail of every command) written off the hot path.

Events of a command (accepted, delivered, answered) are merged in memory and written in
batches: one transaction and one prepared upsert (executemany, see ingest/bulk.py) per batch
instead of several upserts per command. The buffer is
bounded; past it a record is dropped and counted (metric crypto_journal_dropped_total).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

from asgiref.sync import sync_to_async
from google.protobuf.json_format import MessageToDict

from ..generated import common_pb2
from ..generated import crypto_streaming_pb2 as pb2
from . import metrics
from .bus.outcomes import Delivery

logger = logging.getLogger(__name__)
DELIVERED = "delivered"


class CommandJournal:
    """Buffers CommandRecord fields per command_id and flushes them every `interval` seconds."""

    def __init__(self, limit: int = 50_000, interval: float = 0.05) -> None:
        self.limit, self.interval = limit, interval
        self._pending: dict[str, dict[str, Any]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="command-journal")

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the loop, then write what is buffered (bounded by timeout)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        try:
            await asyncio.wait_for(self.flush(), timeout)
        except TimeoutError:
            logger.warning("journal.flush_incomplete left=%d", len(self._pending))

    def _put(self, command_id: str, fields: dict[str, Any]) -> None:
        record = self._pending.get(command_id)
        if record is None:
            if len(self._pending) >= self.limit:
                metrics.JOURNAL_DROPPED.inc()
                return
            record = self._pending[command_id] = {}
        if record.get("outcome") not in (None, "queued", DELIVERED) and fields.get("outcome") == DELIVERED:
            fields = {k: v for k, v in fields.items() if k != "outcome"}  # never step back from a final outcome
        record.update(fields)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.flush()
            except Exception as exc:
                logger.warning("journal.write_failed error=%s", type(exc).__name__)

    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        groups: dict[tuple[bool, tuple[str, ...]], list[tuple[str, dict[str, Any]]]] = {}
        for command_id, fields in batch.items():
            key = (fields.get("outcome") == DELIVERED, tuple(sorted(fields)))
            groups.setdefault(key, []).append((command_id, fields))
        if groups:
            await sync_to_async(_write_groups)(groups)

    def accepted(self, client_id: str, command: pb2.DjangoCommand, sent_by: str, replica: str, wait: bool) -> None:
        """The command itself is kept (it is not changed after acceptance) and turned into the payload JSON
        when its batch is written, off the command's path."""
        self._put(command.command_id, {
            "client_id": client_id, "kind": command.WhichOneof("command") or "", "payload": command,
            "sent_by": sent_by, "accepted_by": replica, "wait_for_ack": wait})

    def delivery(self, command_id: str, delivery: Delivery) -> None:
        """Where the command went and when it reached the stream (or why it never did)."""
        at = datetime.fromtimestamp(delivery.at, UTC)
        self._put(command_id, {"outcome": DELIVERED, "routed_to": delivery.routed_to, "delivered_at": at}
                  if delivery.delivered else {"outcome": "failed", "ack_error": delivery.error, "finished_at": at})

    def late(self, ack: common_pb2.CommandAck) -> None:
        """An ack that arrived after its caller gave up: the record keeps it, marked late."""
        self._put(ack.command_id, {"outcome": "late", "ack_success": ack.success, "ack_message": ack.message,
                                   "ack_error": ack.error, "finished_at": datetime.now(UTC)})

    def outcome(self, ack: common_pb2.CommandAck, timed_out: bool) -> None:
        outcome = "acked" if ack.success else ("timed_out" if timed_out else "failed")
        self._put(ack.command_id, {"outcome": outcome, "ack_success": ack.success, "ack_message": ack.message,
                                   "ack_error": ack.error, "finished_at": datetime.now(UTC)})


def _write_groups(groups: dict[tuple[bool, tuple[str, ...]], list[tuple[str, dict[str, Any]]]]) -> None:
    """One transaction per flush; rows with the same known fields form one upsert (executemany)."""
    from django.db import transaction

    with transaction.atomic():
        for (delivered_only, names), rows in groups.items():
            _upsert(names, [(command_id, _as_columns(fields)) for command_id, fields in rows], delivered_only)


def _as_columns(fields: dict[str, Any]) -> dict[str, Any]:
    payload = fields.get("payload")
    if isinstance(payload, pb2.DjangoCommand):
        fields["payload"] = MessageToDict(payload, preserving_proto_field_name=True)
    return fields


def _upsert(names: tuple[str, ...], rows: list[tuple[str, dict[str, Any]]], delivered_only: bool) -> None:
    """Insert with every column (defaults where this batch knows nothing) and on conflict update only
    the fields it knows; a delivery note never overwrites an outcome the owner already wrote."""
    from django.utils import timezone

    from apps.crypto.models import CommandRecord

    from .ingest.bulk import insert_many

    update = [n for n in names if not (delivered_only and n == "outcome")]
    if not update:
        CommandRecord.objects.bulk_create([CommandRecord(command_id=c, **f) for c, f in rows], ignore_conflicts=True)
    else:
        columns, defaults = _columns(CommandRecord)
        defaults["created_at"] = timezone.now()
        values = ([command_id if name == "command_id" else fields.get(name, defaults[name]) for name in columns]
                  for command_id, fields in rows)
        insert_many(CommandRecord, columns, values, unique=["command_id"], update=update)
    if delivered_only:
        ids = [command_id for command_id, _ in rows]
        CommandRecord.objects.filter(command_id__in=ids, outcome="queued").update(outcome=DELIVERED)


def _columns(model: Any) -> tuple[list[str], dict[str, Any]]:
    """Every concrete column but the primary key, and each one's default value."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    return [f.name for f in fields], {f.name: f.get_default() for f in fields}
