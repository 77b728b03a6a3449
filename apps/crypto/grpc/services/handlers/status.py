"""status: the bot reports its own state; the history row and Client.status change together."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.db import transaction

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import Client, StatusChange

from ..proto.converters import CryptoProtobufConverter as convert
from .base import MessageContext
from .clients import client_pk
from .fields import text


def record_status(pk: int, status: str, details: str, **client_fields: object) -> None:
    """One transaction, so the admin never shows a history row the Client row disagrees with."""
    with transaction.atomic():
        Client.objects.filter(pk=pk).update(status=status, **client_fields)
        StatusChange.objects.create(client_id=pk, status=status, details=details)


async def handle_status(ctx: MessageContext, payload: pb2.StatusUpdate) -> None:
    status = convert.status_from_proto(payload.status, "status.status")
    details = text(ctx, "status.details", StatusChange, "details", payload.details)
    pk = await client_pk(ctx.client_id)
    await sync_to_async(record_status)(pk, status, details, last_seen=ctx.received_at)
