"""Command records, the audit trail of every command: the one writer of CommandRecord, with one set of rules.

- A record never steps back: a delivery note does not overwrite an outcome already final.
- An ack a caller stopped waiting for (timed_out) is recorded as late, with its fields.
- A bot can only ack its own commands: an ack of another client's command is refused.

The caller's side (accepted, delivery, outcome) is merged in memory by the CommandJournal and written
in batches off the hot path; the journal is bounded, past it a record is dropped and counted (metric
crypto_journal_dropped_total). Acks no caller waited for arrive with the bot's other messages and are
stored with their ingest batch (store_acks), in the same transaction.

Timestamps are the events' own: accepted_at, delivered_at (when the accepting replica knew the command
reached the stream) and finished_at of an outcome the caller saw are taken by the accepting replica as
each happens; an ack stored with the bot's messages is timed by the replica that received it (its
clock). created_at is only when the record was first written.

The stream supervisor's keepalive pings are no operator's commands: an ack of one (its id has the
supervisor's KEEPALIVE_PREFIX and no record claims it) is not stored; the pings are counted instead
(crypto_keepalive_pings_total).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from operator import itemgetter
from typing import Any, Final

from asgiref.sync import sync_to_async

from apps.crypto.models import CommandOutcome, CommandRecord
from apps.crypto.protojson import message_to_dict

from ..generated import common_pb2
from ..generated import crypto_streaming_pb2 as pb2
from . import metrics
from .bulk import insert_many
from .bus.outcomes import Delivery
from .streaming.supervisor import is_keepalive
from .tasks import Spawn, spawn_task

logger = logging.getLogger(__name__)
OPEN: Final = frozenset({None, CommandOutcome.QUEUED, CommandOutcome.DELIVERED})  # not yet final
GIVEN_UP: Final = (CommandOutcome.TIMED_OUT, CommandOutcome.LATE)  # the caller stopped waiting
ACK_FIELDS: Final = ["outcome", "ack_success", "ack_message", "ack_error", "finished_at"]
LOOKUP_CHUNK: Final = 500  # command ids per lookup query (SQLite allows 32,766 parameters)


def ack_outcome(success: bool, timed_out: bool = False) -> CommandOutcome:
    return CommandOutcome.ACKED if success else (CommandOutcome.TIMED_OUT if timed_out else CommandOutcome.FAILED)


@dataclass(slots=True)
class AckRow:
    """The fields a bot's ack sets; `finished_at` is the server's receive time (bot clocks are not trusted)."""

    command_id: str
    client_id: str
    success: bool
    message: str
    error: str
    finished_at: datetime


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), LOOKUP_CHUNK):
        yield items[start:start + LOOKUP_CHUNK]


def stored_records(command_ids: Sequence[str]) -> dict[str, tuple[str, str]]:
    """command_id -> (client_id, outcome) of the records that exist (sync ORM)."""
    found: dict[str, tuple[str, str]] = {}
    for chunk in _chunks(command_ids):
        rows = CommandRecord.objects.filter(command_id__in=chunk).values_list("command_id", "client_id", "outcome")
        found.update((command_id, (client_id, outcome)) for command_id, client_id, outcome in rows)
    return found


def store_acks(rows: Sequence[AckRow], stored: dict[str, tuple[str, str]]) -> None:
    """Upserted by command_id; an ack for an unknown command still leaves a record (kind ''), since the
    bot says it ran something, unless it answers the replica's own keepalive ping (no operator sent that);
    one for a command whose caller gave up is late (sync ORM)."""
    records = [CommandRecord(
        command_id=r.command_id, client_id=r.client_id, ack_success=r.success, ack_message=r.message,
        ack_error=r.error, finished_at=r.finished_at,
        outcome=CommandOutcome.LATE if stored.get(r.command_id, ("", ""))[1] in GIVEN_UP else ack_outcome(r.success))
        for r in rows if r.command_id in stored or not is_keepalive(r.command_id)]
    if records:
        CommandRecord.objects.bulk_create(records, update_conflicts=True, unique_fields=["command_id"],
                                          update_fields=ACK_FIELDS)


class CommandJournal:
    """Buffers CommandRecord fields per command_id and writes them every `interval` seconds, or as soon as
    `batch` records wait, whichever comes first.

    Why 0.25 s and not less: a write's fixed costs (the hand-off to the ORM thread and back, a transaction,
    its commit rewriting the same hot pages of the table and its indexes) are shared by every record in it;
    at 1,000 commands/s on SQLite a 0.05 s interval cost 1.5-2x the writer's CPU per command, 1 s saves
    little more (bench/journal.py). A record is still written within a fraction of a second (trace_command
    and the admin already say that a command sent a moment ago may not be written yet).
    """

    def __init__(self, limit: int = 50_000, interval: float = 0.25, batch: int = 500) -> None:
        self.limit, self.interval, self.batch = limit, interval, batch
        self._pending: dict[str, dict[str, Any]] = {}
        self._full = asyncio.Event()  # `batch` records wait: write now
        self._task: asyncio.Task[None] | None = None

    def start(self, spawn: Spawn = spawn_task) -> None:
        self._task = spawn(self._run(), "command-journal")

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
            if len(self._pending) >= self.batch:
                self._full.set()
        if record.get("outcome") not in OPEN and fields.get("outcome") == CommandOutcome.DELIVERED:
            fields = {k: v for k, v in fields.items() if k != "outcome"}  # never step back from a final outcome
        record.update(fields)

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._full.wait(), self.interval)
            except TimeoutError:
                pass
            self._full.clear()
            try:
                await self.flush()
            except Exception as exc:
                logger.warning("journal.write_failed error=%s", type(exc).__name__)

    async def flush(self) -> None:
        """Write what is buffered; the rows are prepared in the ORM thread, in one hand-off."""
        batch, self._pending = self._pending, {}
        if batch:
            await sync_to_async(_write)(batch)

    def accepted(self, client_id: str, command: pb2.DjangoCommand, sent_by: str, replica: str, wait: bool) -> None:
        """The command itself is kept (it is not changed after acceptance) and turned into the payload JSON
        when its batch is written, off the command's path. accepted_at is taken now, at acceptance: the
        row's created_at is only when its batch was written, often after the command was delivered."""
        self._put(command.command_id, {
            "client_id": client_id, "kind": command.WhichOneof("command") or "", "payload": command,
            "sent_by": sent_by, "accepted_by": replica, "wait_for_ack": wait, "accepted_at": datetime.now(UTC)})

    def delivery(self, command_id: str, delivery: Delivery) -> None:
        """Where the command went and when it reached the stream (or why it never did)."""
        at = datetime.fromtimestamp(delivery.at, UTC)
        self._put(command_id, {"outcome": CommandOutcome.DELIVERED, "routed_to": delivery.routed_to,
                               "delivered_at": at} if delivery.delivered else
                  {"outcome": CommandOutcome.FAILED, "ack_error": delivery.error, "finished_at": at})

    def broadcast_copy(self, client_id: str, payload: dict[str, Any], ack: common_pb2.CommandAck, *, sent_by: str,
                       replica: str, routed_to: str, accepted_at: datetime, timed_out: bool) -> None:
        """One bot's copy of a broadcast and how it ended, in one buffered record (so trace_command finds it).
        `payload` is the broadcast's command as a dict, shared by every copy; the copy's own id goes in."""
        self._put(ack.command_id, {
            "client_id": client_id, "kind": payload.get("kind", ""), "payload": {**payload["command"],
                                                                                  "command_id": ack.command_id},
            "sent_by": sent_by, "accepted_by": replica, "routed_to": routed_to, "wait_for_ack": True,
            "accepted_at": accepted_at, "outcome": ack_outcome(ack.success, timed_out), "ack_success": ack.success,
            "ack_message": ack.message, "ack_error": ack.error, "finished_at": datetime.now(UTC)})

    def broadcast(self, broadcast_id: str, selector: dict[str, Any], payload: dict[str, Any], counts: dict[str, Any],
                  *, sent_by: str, replica: str, accepted_at: datetime, finished_at: datetime) -> None:
        """The broadcast's own record (kind "broadcast"): who sent it, the selector, the command, the counts by
        outcome and its timings; client_id names the selector ("*", "type:<t>" or "ids:<n>"). A broadcast its
        caller cancelled is recorded failed, with the counts known by then and counts["ending"] "cancelled"."""
        label = ("*" if selector.get("all_connected") else f"type:{selector['client_type']}"
                 if selector.get("client_type") else f"ids:{len(selector.get('client_ids', []))}")
        acked = not counts.get("failed") and counts.get("ending") != "cancelled"  # every bot acked, all of it ran
        self._put(broadcast_id, {
            "client_id": label[:128], "kind": "broadcast", "sent_by": sent_by, "accepted_by": replica,
            "wait_for_ack": True, "payload": {"selector": selector, "command": payload["command"], "counts": counts},
            "outcome": CommandOutcome.ACKED if acked else CommandOutcome.FAILED, "ack_success": acked,
            "ack_message": " ".join(f"{k}={v}" for k, v in counts.items() if isinstance(v, int)),
            "accepted_at": accepted_at, "finished_at": finished_at})

    def late(self, ack: common_pb2.CommandAck) -> None:
        """An ack that arrived after its caller gave up: the record keeps it, marked late."""
        self._answer(ack, CommandOutcome.LATE)

    def outcome(self, ack: common_pb2.CommandAck, timed_out: bool) -> None:
        self._answer(ack, ack_outcome(ack.success, timed_out))

    def _answer(self, ack: common_pb2.CommandAck, outcome: CommandOutcome) -> None:
        self._put(ack.command_id, {"outcome": outcome, "ack_success": ack.success, "ack_message": ack.message,
                                   "ack_error": ack.error, "finished_at": datetime.now(UTC)})


def _write(batch: dict[str, dict[str, Any]]) -> None:
    """One transaction per flush; rows with the same known fields form one upsert (executemany)."""
    from django.db import transaction

    groups: dict[tuple[bool, tuple[str, ...]], list[tuple[str, dict[str, Any]]]] = {}
    for command_id, fields in batch.items():
        payload = fields.get("payload")
        if type(payload) is pb2.DjangoCommand:
            fields["payload"] = message_to_dict(payload)
        key = (fields.get("outcome") == CommandOutcome.DELIVERED, _sorted(tuple(fields)))
        groups.setdefault(key, []).append((command_id, fields))
    with transaction.atomic():
        for (delivered_only, names), rows in groups.items():
            _upsert(names, rows, delivered_only)


def _upsert(names: tuple[str, ...], rows: list[tuple[str, dict[str, Any]]], delivered_only: bool) -> None:
    """Insert with every column (defaults where this batch knows nothing) and on conflict update only
    the fields it knows; a delivery note never overwrites an outcome the owner already wrote."""
    from django.utils import timezone

    update = [n for n in names if not (delivered_only and n == "outcome")]
    if not update:
        CommandRecord.objects.bulk_create([CommandRecord(command_id=c, **f) for c, f in rows], ignore_conflicts=True)
    else:
        columns, defaults = _columns()
        rest = [name for name in columns if name not in names and name != "command_id"]
        fixed = [timezone.now() if name == "created_at" else defaults[name] for name in rest]
        known = itemgetter(*names) if len(names) > 1 else (lambda fields: (fields[names[0]],))
        values = ((command_id, *known(fields), *fixed) for command_id, fields in rows)  # `fixed`: every row the same
        insert_many(CommandRecord, ["command_id", *names, *rest], values, unique=["command_id"], update=update)
    if delivered_only:
        ids = [command_id for command_id, _ in rows]
        CommandRecord.objects.filter(command_id__in=ids, outcome=CommandOutcome.QUEUED).update(
            outcome=CommandOutcome.DELIVERED)


@cache
def _sorted(names: tuple[str, ...]) -> tuple[str, ...]:
    """A record's field names in one order: the calls set a few dozen orders at most, sorted once each."""
    return tuple(sorted(names))


@cache
def _columns() -> tuple[tuple[str, ...], dict[str, Any]]:
    """Every concrete column but the primary key, and each one's default value (never mutated: only written)."""
    fields = [f for f in CommandRecord._meta.concrete_fields if not f.primary_key]
    return tuple(f.name for f in fields), {f.name: f.get_default() for f in fields}
