"""status: the bot reports its own state; the history row and Client.status change together."""

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
    """Every report keeps its history row; the Client row gets the last one."""
    plan.part(STATUS.name, list).append(w)
    patch(plan, w.client_pk, w.ctx.client_id).fields.update(status=w.status, last_seen=w.ctx.received_at)


def store(plan: Plan) -> list[Refusal]:
    StatusChange.objects.bulk_create([StatusChange(client_id=w.client_pk, status=w.status, details=w.details)
                                      for w in plan.part(STATUS.name, list)])
    return []


STATUS = PayloadKind(StatusWrite.kind, store, check=check, fold=fold)
