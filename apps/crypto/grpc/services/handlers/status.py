"""status: the bot reports its own state; the history row and Client.status change together."""

from __future__ import annotations

from django.db import transaction

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, StatusChange

from ..ingest.writes import StatusWrite
from ..proto.converters import CryptoProtobufConverter as convert
from .base import MessageContext
from .fields import text


def record_status(pk: int, status: str, details: str, **client_fields: object) -> None:
    """One transaction, so the admin never shows a history row the Client row disagrees with.

    Used for stream open/close bookkeeping; reported statuses go through the ingest buffer, whose
    batch transaction gives the same guarantee.
    """
    with transaction.atomic():
        Client.objects.filter(pk=pk).update(status=status, **client_fields)
        StatusChange.objects.create(client_id=pk, status=status, details=details)


def handle_status(ctx: MessageContext, client_pk: int, payload: pb2.StatusUpdate) -> StatusWrite:
    return StatusWrite(
        ctx, client_pk,
        status=convert.status_from_proto(payload.status, "status.status"),
        details=text(ctx, "status.details", StatusChange, "details", payload.details),
    )
