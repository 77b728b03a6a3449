"""status: the bot reports its own state; every report keeps its history row, the latest sets Client.status.

"Latest" is the bot's own order (ctx.reported_at: its ClientMessage.timestamp), not the order in which
replicas store: Client.status changes only when the report is not older than the stored
Client.status_reported_at (checked in SQL, see clients.py), so a lagging replica that stores an old
report after a newer one was stored elsewhere adds its history row but leaves Client.status alone.
Stream open/close bookkeeping (record_status) is the server's own and is not ordered this way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from django.db import transaction

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, StatusChange

from ..inbound import MessageContext, Refusal
from ..ingest.plan import PayloadKind, Plan
from ..proto.converters import CryptoProtobufConverter as convert
from .clients import patch
from .fields import text


@dataclass(slots=True)
class StatusWrite:
    kind: ClassVar[str] = "status"
    ctx: MessageContext
    client_pk: int
    status: str
    details: str


def record_status(pk: int, status: str, details: str, **client_fields: object) -> None:
    """One transaction, so the admin never shows a history row the Client row disagrees with.

    Used for stream open/close bookkeeping; reported statuses go through the ingest buffer, whose
    batch transaction gives the same guarantee.
    """
    with transaction.atomic():
        Client.objects.filter(pk=pk).update(status=status, **client_fields)
        StatusChange.objects.create(client_id=pk, status=status, details=details)


def check(ctx: MessageContext, client_pk: int, payload: pb2.StatusUpdate) -> StatusWrite:
    return StatusWrite(
        ctx, client_pk,
        status=convert.status_from_proto(payload.status, "status.status"),
        details=text(ctx, "status.details", StatusChange, "details", payload.details),
    )


def fold(plan: Plan, w: StatusWrite) -> None:
    """Every report keeps its history row; the Client row gets the one with the greatest reported_at (a tie:
    the later message)."""
    plan.part(STATUS.name, list).append(w)
    row = patch(plan, w.client_pk, w.ctx.client_id)
    if row.status_at is None or row.status_at <= w.ctx.reported_at:
        row.fields["status"] = w.status
        row.status_at = w.ctx.reported_at
    row.fields["last_seen"] = w.ctx.received_at


def store(plan: Plan) -> list[Refusal]:
    StatusChange.objects.bulk_create([StatusChange(client_id=w.client_pk, status=w.status, details=w.details)
                                      for w in plan.part(STATUS.name, list)])
    return []


STATUS = PayloadKind(StatusWrite.kind, store, check=check, fold=fold)
