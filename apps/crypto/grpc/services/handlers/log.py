"""log: a bot log line, stored as sent (within limits); extra_data stays opaque text."""

from __future__ import annotations

from apps.crypto.grpc.generated import crypto_streaming_pb2 as pb2
from apps.crypto.models import LogEntry

from .base import MessageContext
from .clients import client_pk
from .fields import text


async def handle_log(ctx: MessageContext, payload: pb2.LogEntry) -> None:
    fields = {
        "level": text(ctx, "log.level", LogEntry, "level", payload.level),
        "message": text(ctx, "log.message", LogEntry, "message", payload.message),
        "extra_data": text(ctx, "log.extra_data", LogEntry, "extra_data", payload.extra_data),
    }
    await LogEntry.objects.acreate(client_id=await client_pk(ctx.client_id), **fields)
