"""The journal's writer as of 623985c, kept as the oracle for the current one's rows.

It grouped on the event loop, turned each payload into JSON with MessageToDict and built every row
column by column; the current writer does it differently and cheaper, and must write the same rows.
The calls (accepted, delivery, outcome, ...) are the current journal's: only the writing differs.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.db import transaction
from django.utils import timezone
from google.protobuf.json_format import MessageToDict

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.grpc.services.bulk import insert_many
from apps.crypto.grpc.services.records import CommandJournal
from apps.crypto.models import CommandOutcome, CommandRecord


class ReferenceJournal(CommandJournal):
    async def flush(self) -> None:
        batch, self._pending = self._pending, {}
        groups: dict[tuple[bool, tuple[str, ...]], list[tuple[str, dict[str, Any]]]] = {}
        for command_id, fields in batch.items():
            key = (fields.get("outcome") == CommandOutcome.DELIVERED, tuple(sorted(fields)))
            groups.setdefault(key, []).append((command_id, fields))
        if groups:
            await sync_to_async(_write_groups)(groups)


def _write_groups(groups: dict[tuple[bool, tuple[str, ...]], list[tuple[str, dict[str, Any]]]]) -> None:
    with transaction.atomic():
        for (delivered_only, names), rows in groups.items():
            _upsert(names, [(command_id, _as_columns(fields)) for command_id, fields in rows], delivered_only)


def _as_columns(fields: dict[str, Any]) -> dict[str, Any]:
    payload = fields.get("payload")
    if isinstance(payload, pb2.DjangoCommand):
        fields["payload"] = MessageToDict(payload, preserving_proto_field_name=True)
    return fields


def _upsert(names: tuple[str, ...], rows: list[tuple[str, dict[str, Any]]], delivered_only: bool) -> None:
    update = [n for n in names if not (delivered_only and n == "outcome")]
    if not update:
        CommandRecord.objects.bulk_create([CommandRecord(command_id=c, **f) for c, f in rows], ignore_conflicts=True)
    else:
        fields = [f for f in CommandRecord._meta.concrete_fields if not f.primary_key]
        columns, defaults = [f.name for f in fields], {f.name: f.get_default() for f in fields}
        defaults["created_at"] = timezone.now()
        values = ([command_id if name == "command_id" else fields.get(name, defaults[name]) for name in columns]
                  for command_id, fields in rows)
        insert_many(CommandRecord, columns, values, unique=["command_id"], update=update)
    if delivered_only:
        ids = [command_id for command_id, _ in rows]
        CommandRecord.objects.filter(command_id__in=ids, outcome=CommandOutcome.QUEUED).update(
            outcome=CommandOutcome.DELIVERED)
